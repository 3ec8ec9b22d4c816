//! The repository describes itself: every repository path named in its source, docs, scripts
//! and configuration exists, and nothing points at design notes kept outside it.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Top-level folders whose paths are checked when a file names them.
const TOP: [&str; 10] =
    ["src/", "tests/", "docs/", "rotation/", "emulator/", "scripts/", "layer/", "examples/", "fuzz/", "benches/"];
/// Not the repository's own text: build output, installed tools, fuzzing data.
const SKIP_DIRS: [&str; 8] =
    [".git", "target", ".venv", "node_modules", "corpus", "artifacts", ".aws-sam", "__pycache__"];
const TEXT: [&str; 11] = ["rs", "md", "toml", "sh", "yaml", "yml", "py", "go", "java", "js", "txt"];

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                text_files(&path, out);
            }
        } else if name == "Makefile"
            || name.starts_with("vertex-broker-")
            || path.extension().is_some_and(|e| TEXT.contains(&e.to_string_lossy().as_ref()))
        {
            out.push(path);
        }
    }
}

/// Path-like words starting with one of `TOP`, not part of a URL or a longer path.
fn named_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for top in TOP {
        let mut from = 0;
        while let Some(i) = text[from..].find(top) {
            let at = from + i;
            from = at + top.len();
            let before = at.checked_sub(1).map(|b| bytes[b] as char);
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || "/.-_~$:{".contains(c)) {
                continue;
            }
            let end = text[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .map_or(text.len(), |e| at + e);
            let path = text[at..end].trim_end_matches(['.', '-']);
            // Placeholders (`target/package/ARCH/`, `fuzz/corpus/TARGET`), globs, and what tools
            // create (`fuzz/target`, `fuzz/artifacts/`) are not names of the repository's files.
            let placeholder = path.split('/').any(|seg| seg.len() > 1 && seg.chars().all(|c| c.is_ascii_uppercase()));
            let output = path.split('/').any(|seg| SKIP_DIRS.contains(&seg));
            if !placeholder && !output && !text[end..].starts_with('*') {
                found.push(path.to_string());
            }
        }
    }
    found
}

/// The crate a file belongs to: its nearest folder with a Cargo.toml (paths in a crate's own
/// files may be relative to it).
fn crate_root(file: &Path) -> PathBuf {
    let mut dir = file.parent().unwrap().to_path_buf();
    while !dir.join("Cargo.toml").exists() && dir != Path::new(ROOT) {
        dir.pop();
    }
    dir
}

#[test]
fn every_path_the_repository_names_exists() {
    let mut files = Vec::new();
    text_files(Path::new(ROOT), &mut files);
    assert!(files.len() > 50, "found the repository's files: {}", files.len());
    let mut missing = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let base = crate_root(file);
        for path in named_paths(&text) {
            if !Path::new(ROOT).join(&path).exists() && !base.join(&path).exists() {
                missing.push(format!("{}: {path}", file.strip_prefix(ROOT).unwrap().display()));
            }
        }
    }
    assert!(missing.is_empty(), "named but not in the repository:\n{}", missing.join("\n"));
}

#[test]
fn nothing_points_outside_the_repository() {
    let mut files = Vec::new();
    text_files(Path::new(ROOT), &mut files);
    // Spelled in pieces, so that this file does not name them itself.
    let outside = [concat!("DESIGN", ".md"), concat!("DEVELOP", "ERS"), concat!("..", "/shared")];
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for word in outside {
            assert!(!text.contains(word), "{} refers to {word}, which is not in the repository", file.display());
        }
    }
}

#[test]
fn the_scanner_finds_paths_and_skips_urls_and_placeholders() {
    let text = "see src/broker/mod.rs, https://github.com/x/src/lib.rs and target/package/ARCH/ or \
                fuzz/corpus/TARGET; tests/support/*.rs; fuzz/artifacts/; `docs/ARCHITECTURE.md`.";
    assert_eq!(named_paths(text), ["src/broker/mod.rs", "docs/ARCHITECTURE.md"]);
}
