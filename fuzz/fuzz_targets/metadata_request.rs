//! The broker's request handling as a neighbour on 127.0.0.1 could drive it: the input is a
//! request head as text (request line, then `Name: value` lines); whatever hyper would accept
//! goes through the guards and the router. Neither may panic; every refusal is one short line;
//! whatever reaches a token route carries only validated scopes or audience.

#![no_main]

#[path = "common/request_head.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vertex_broker::broker::guard;
use vertex_broker::broker::metadata::{Leaf, Route};
use vertex_broker::google::scopes::{valid_scope, Audience};

fuzz_target!(|data: &[u8]| {
    let Some(req) = common::request(&String::from_utf8_lossy(data)) else { return };
    match guard::check(req.method(), req.uri(), req.headers()) {
        Err(refusal) => {
            assert!(!refusal.message.contains(['\n', '\r']), "{refusal:?}");
            assert!(refusal.message.len() < 600, "{refusal:?}");
            assert!([400, 403, 405, 414].contains(&refusal.status.as_u16()), "{refusal:?}");
        }
        Ok(()) => match Route::parse(req.uri().path(), req.uri().query()) {
            Err(reply) => {
                assert!([400, 404].contains(&reply.status.as_u16()), "{reply:?}");
                assert!(!reply.message.contains('\n'), "{reply:?}");
            }
            Ok(Route::Account { leaf: Leaf::Token(Some(key)), .. }) => {
                let scopes: Vec<&str> = key.scopes().collect();
                assert!(scopes.iter().all(|s| valid_scope(s)), "{key:?}");
                assert!(scopes.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates: {key:?}");
            }
            Ok(Route::Account { leaf: Leaf::Identity(audience), .. }) => {
                assert!(Audience::parse(audience.as_str()).is_ok(), "{audience:?}");
            }
            Ok(_) => {}
        },
    }
});
