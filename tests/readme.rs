//! The README says only what is true: every `vertex-broker` command line it shows parses (each
//! subcommand and flag is in that subcommand's --help), every `make` target exists, every
//! variable in its configuration table is read by the code with the default it names, and every
//! variable the code reads is in the table. What each command does is tested in tests/cli.rs,
//! tests/serve.rs and the test command (make test, sam build).

use std::collections::BTreeSet;
use std::process::Command;

use vertex_broker::config::Config;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README's command lines: each code-block line and each `backticked` span that starts with
/// `program `, cut at a shell comment.
fn command_lines(readme: &str, program: &str) -> Vec<String> {
    let prefix = format!("{program} ");
    let mut found = Vec::new();
    let mut in_code = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let spans: Vec<&str> = if in_code {
            vec![line.split(" #").next().unwrap_or_default()]
        } else {
            line.split('`').skip(1).step_by(2).collect()
        };
        found.extend(spans.into_iter().map(str::trim).filter(|s| s.starts_with(&prefix)).map(str::to_string));
    }
    found
}

#[test]
fn every_cli_command_in_the_readme_parses() {
    let lines = command_lines(&read("README.md"), "vertex-broker");
    assert!(lines.len() >= 12, "the README shows the CLI: {lines:?}");
    let mut subcommands = BTreeSet::new();
    for line in &lines {
        let mut words = line.split_whitespace().skip(1);
        let sub = words.next().unwrap();
        subcommands.insert(sub.to_string());
        let help =
            Command::new(env!("CARGO_BIN_EXE_vertex-broker")).args([sub, "--help"]).env_clear().output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success(), "`vertex-broker {sub} --help` failed (README: `{line}`)");
        let flags = words.map(|w| w.trim_matches(['[', ']', '(', ')', ',', '.'])).filter(|w| w.starts_with("--"));
        for flag in flags {
            assert!(text.contains(flag), "README: `{line}`: `vertex-broker {sub}` has no {flag}");
        }
    }
    let expected = ["dev", "doctor", "health", "init", "mint", "revoke", "rotate", "serve", "status", "token"];
    assert_eq!(subcommands, expected.iter().map(|s| s.to_string()).collect(), "every subcommand is documented");
}

#[test]
fn every_make_target_in_the_readme_exists() {
    let makefile = read("Makefile");
    let targets = command_lines(&read("README.md"), "make");
    assert!(targets.len() >= 4, "{targets:?}");
    for line in targets {
        let target = line.split_whitespace().nth(1).unwrap();
        assert!(makefile.contains(&format!("\n{target}:")), "README: `{line}`: Makefile has no target {target}");
    }
}

#[test]
fn the_configuration_table_matches_the_code_and_its_defaults() {
    let readme = read("README.md");
    let rows: Vec<(String, String)> = readme
        .lines()
        .filter(|l| l.starts_with("| `VERTEX_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].to_string())
        })
        .collect();
    let mut sources: Vec<String> = std::fs::read_dir(format!("{}/src/config", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    sources.push(read("examples/vertex-proxy/src/lib.rs"));
    let code = sources.join("\n");
    let mut read_by_code: BTreeSet<String> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("VERTEX_") && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_string)
        .collect();
    // The layer's exec wrapper reads its own (`${VERTEX_BROKER_...:-default}`).
    let wrapper = read("layer/vertex-broker-wrapper");
    let read_by_wrapper: BTreeSet<String> = wrapper
        .split("${")
        .skip(1)
        .filter_map(|s| s.split([':', '}']).next())
        .filter(|s| s.starts_with("VERTEX_BROKER_"))
        .map(str::to_string)
        .collect();
    read_by_code.extend(read_by_wrapper.iter().cloned());
    let documented: BTreeSet<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(documented, read_by_code, "the README's table lists exactly the variables the code reads");

    // Setting a variable to its documented default changes nothing.
    let unset = Config::from_lookup(|_| None).unwrap();
    let mut checked = 0;
    for (name, default) in &rows {
        let Some(value) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) else {
            continue; // "(required)", "unset": no value to compare
        };
        if name == "VERTEX_ENDPOINT_URL" || read_by_wrapper.contains(name) {
            continue; // read by the example function or the wrapper, not by Config
        }
        let set = Config::from_lookup(|k| (k == name).then(|| value.to_string()))
            .unwrap_or_else(|e| panic!("README default of {name} is invalid: {e}"));
        assert_eq!(set, unset, "README says {name} defaults to {value}");
        checked += 1;
    }
    assert!(checked >= 8, "the defaults were compared ({checked})");
}

#[test]
fn the_gateway_table_in_the_readme_is_the_one_in_the_code() {
    // `row("METHOD", "shape", ...)` in the code; `| \`METHOD\` | \`shape\` ...` in the README.
    let code = read("src/broker/gateway/route/table.rs");
    let mut in_code: Vec<(String, String)> = code
        .split("row(\"")
        .skip(1)
        .filter_map(|s| {
            let (method, rest) = s.split_once("\", \"")?;
            Some((method.to_string(), rest.split('"').next()?.to_string()))
        })
        .collect();
    let mut in_readme: Vec<(String, String)> = read("README.md")
        .lines()
        .filter(|l| ["| `POST` |", "| `GET` |", "| `PATCH` |", "| `DELETE` |"].iter().any(|p| l.starts_with(p)))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].split('`').nth(1).unwrap_or_default().to_string())
        })
        .collect();
    in_code.sort();
    in_readme.sort();
    assert!(in_code.len() >= 20, "{in_code:?}");
    assert_eq!(in_readme, in_code, "README's table of what the gateway forwards, row by row");
}
