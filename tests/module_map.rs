//! The map a newcomer finds things by cannot drift: every folder under `src/`, and every module
//! file of `src/`, `src/broker/` and `src/google/`, has a row in docs/ARCHITECTURE.md's module
//! table (the one module map), every path a row names exists, and no source file of
//! the library, the rotation function or the emulator grows past 400 lines (the size at which a
//! file stops having one job).

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Longest source file, in lines.
const MAX_LINES: usize = 400;

/// The backquoted paths in the rows of docs/ARCHITECTURE.md's `## Modules` table.
fn module_rows() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    let table = text.split("## Modules").nth(1).expect("docs/ARCHITECTURE.md has a ## Modules section");
    let table = table.split("\n## ").next().unwrap();
    let mut paths = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap();
        paths.extend(first_cell.split('`').skip(1).step_by(2).map(str::to_string));
    }
    paths
}

fn dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.push(entry.path());
            dirs(&entry.path(), out);
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_folder_under_src_has_a_row_and_every_row_names_what_exists() {
    let rows = module_rows();
    assert!(rows.len() >= 10, "read the module table: {rows:?}");
    let missing_paths: Vec<&String> = rows.iter().filter(|p| !Path::new(ROOT).join(p).exists()).collect();
    assert!(missing_paths.is_empty(), "rows name paths that do not exist: {missing_paths:?}");
    let mut folders = Vec::new();
    dirs(&Path::new(ROOT).join("src"), &mut folders);
    let unlisted: Vec<String> = folders
        .iter()
        .map(|d| format!("{}/", d.strip_prefix(ROOT).unwrap().display()))
        .filter(|d| !rows.contains(d))
        .collect();
    assert!(unlisted.is_empty(), "folders under src/ with no row in docs/ARCHITECTURE.md's module table: {unlisted:?}");
}

#[test]
fn every_module_file_of_the_top_folders_has_a_row() {
    let rows = module_rows();
    let mut unlisted = Vec::new();
    for dir in ["src", "src/broker", "src/google"] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") && name != "mod.rs" {
                let path = format!("{dir}/{name}");
                if !rows.contains(&path) {
                    unlisted.push(path);
                }
            }
        }
    }
    assert!(unlisted.is_empty(), "module files with no row in docs/ARCHITECTURE.md's module table: {unlisted:?}");
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let mut files = Vec::new();
    for dir in ["src", "rotation/src", "emulator/src"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines})", f.strip_prefix(ROOT).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines, split by concern: {long:?}");
}
