//! `make bench` (mint path): time from a cold cache to a token, per token source, through the
//! broker's own account code against moto and the Google emulator. Every Google endpoint is
//! given the same injected per-call delay so round trips show; sources are interleaved round by
//! round, and each is compared with the rotated key (today's path) measured in the same rounds.
//! Prints; asserts nothing.

use test_support as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use google_emulator::{Fault, TOKEN_CREATOR, WORKLOAD_IDENTITY_USER};
use support::failing_store::{FailingStore, Op};
use support::federation;
use vertex_broker::broker::{Broker, BrokerSettings};
use vertex_broker::google::federation::{AwsIdentity, CredentialConfig};
use vertex_broker::store::SecretStore;

const ROUNDS: usize = 15;
const GOOGLE: [&str; 3] = ["token", "sts", "iamcredentials"];

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

struct Source {
    name: &'static str,
    settings: BrokerSettings,
    times: Vec<Duration>,
    aws_calls: usize,
    google_calls: u64,
}

async fn run() {
    let f = support::Fixture::new("bench-mint").await;
    let target = support::account("bench-target");
    f.emu.grant(&target, TOKEN_CREATOR, &f.account);
    let audience = federation::provider_audience(&support::unique("bench-pool"));
    federation::trust_moto(&f.emu, &audience);
    let creds = federation::assume_role(&support::unique("bench-role"), "bench").await;
    f.emu.grant(&target, WORKLOAD_IDENTITY_USER, &federation::role_member(&audience, &creds));
    let aws =
        AwsIdentity::fixed(&creds.access_key_id, &creds.secret_access_key, Some(&creds.session_token), "us-east-1");
    let federated = |impersonate: Option<&str>| {
        let config = federation::signed_for_moto(federation::credential_config(&f.emu, &audience, impersonate));
        let mut s = BrokerSettings::for_secrets(Vec::new());
        s.credential_config = Some(CredentialConfig::parse(&config.to_string()).unwrap());
        s.aws = Some(aws.clone());
        s
    };
    let key = BrokerSettings::for_secrets(vec![f.secret.clone()]);
    let mut key_impersonating = key.clone();
    key_impersonating.impersonate = Some(target.clone());
    key_impersonating.iam_credentials_endpoint = f.emu.url();
    let source = |name, settings| Source { name, settings, times: Vec::new(), aws_calls: 0, google_calls: 0 };

    for delay_ms in [0u64, 50] {
        let mut sources = vec![
            source("rotated key", key.clone()),
            source("rotated key + impersonation", key_impersonating.clone()),
            source("federation", federated(None)),
            source("federation + impersonation", federated(Some(&target))),
        ];
        f.emu.clear_faults();
        for endpoint in GOOGLE {
            f.emu.inject(Fault { endpoint: endpoint.into(), count: u32::MAX, status: None, delay_ms });
        }
        for round in 0..ROUNDS + 1 {
            // Rotate the order so no source always runs first after a pause.
            let n = sources.len();
            for i in 0..n {
                let s = &mut sources[(i + round) % n];
                let store = Arc::new(FailingStore::new(f.store.clone(), Op::Put, 0));
                let broker = Broker::new(&s.settings, store.clone() as Arc<dyn SecretStore>).unwrap();
                let account = broker.accounts()[0].clone();
                let before: u64 = GOOGLE.iter().map(|e| f.emu.calls(e)).sum();
                let started = Instant::now();
                account.access_token(broker.default_scopes()).await.unwrap_or_else(|e| panic!("{}: {e}", s.name));
                let took = started.elapsed();
                if round == 0 {
                    continue; // warm-up: connections, TLS roots, the emulator's first key
                }
                s.times.push(took);
                s.aws_calls = store.reads();
                s.google_calls = GOOGLE.iter().map(|e| f.emu.calls(e)).sum::<u64>() - before;
            }
        }
        let median = |times: &[Duration]| {
            let mut t = times.to_vec();
            t.sort();
            (t[t.len() / 2], t[t.len() * 9 / 10])
        };
        let (base, _) = median(&sources[0].times);
        println!();
        println!(
            "cold cache -> token, {ROUNDS} interleaved rounds; every Google call delayed {delay_ms} ms (AWS calls: \
             moto, undelayed)"
        );
        println!(
            "{:<30} {:>9} {:>12} {:>9} {:>9} {:>16} {:>13}",
            "source", "AWS calls", "Google calls", "p50 ms", "p90 ms", "p50 - delays ms", "vs rotated key"
        );
        for s in &sources {
            let (p50, p90) = median(&s.times);
            let delays = Duration::from_millis(delay_ms * s.google_calls);
            println!(
                "{:<30} {:>9} {:>12} {:>9.1} {:>9.1} {:>16.1} {:>12.2}x",
                s.name,
                s.aws_calls,
                s.google_calls,
                p50.as_secs_f64() * 1000.0,
                p90.as_secs_f64() * 1000.0,
                p50.saturating_sub(delays).as_secs_f64() * 1000.0,
                p50.as_secs_f64() / base.as_secs_f64().max(1e-9)
            );
        }
    }
    println!();
    println!("AWS calls are the broker's (Secrets Manager reads); the subject token is signed locally, and the");
    println!("GetCallerIdentity replay is Google STS's own call to AWS (moto here), inside the STS round trip.");
}
