//! The `valgrind` step: memcheck over the test binaries of every crate with `unsafe` code.
//!
//! No nightly toolchain here, so no Miri: valgrind memcheck stands in. The crates to check
//! are a fixed list, [`UNSAFE_CRATES`], and an audit keeps the list honest: it scans the
//! `src/` of every workspace crate and fails the step if one uses the `unsafe` keyword
//! (outside comments and string literals) while being neither listed nor
//! `#![forbid(unsafe_code)]`, so a new unsafe crate cannot silently skip valgrind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The workspace crates that contain `unsafe` code; their tests run under valgrind.
const UNSAFE_CRATES: &[&str] = &["weft-lockfree", "weft-sync", "weft-workerpool"];

/// The memcheck options: any error or definite/indirect leak fails the run. Only those
/// leak kinds are shown, so std's "possibly lost" thread handles do not look like failures.
const VALGRIND_ARGS: &[&str] = &[
    "--tool=memcheck",
    "--error-exitcode=1",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
    "--show-leak-kinds=definite,indirect",
    "--quiet",
];

/// A workspace package: its name and the directory holding its `Cargo.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    /// The package name, e.g. `weft-lockfree`.
    name: String,
    /// The package directory.
    dir: PathBuf,
}

/// A test executable cargo built, with the directory `cargo test` would run it in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestBinary {
    /// Path of the executable.
    path: PathBuf,
    /// The package directory of the crate it tests (its working directory).
    package_dir: PathBuf,
}

/// Runs the step: checks valgrind is installed, audits the unsafe list, then runs every
/// test binary of every listed crate under memcheck with `WEFT_VALGRIND=1` and
/// `--test-threads=1`. Fails if any binary fails, naming each one.
pub(super) fn run(root: &Path) -> Result<(), String> {
    check_valgrind()?;
    let packages = workspace_packages(root)?;
    audit_unsafe(&packages)?;
    let mut failures = Vec::new();
    for name in UNSAFE_CRATES {
        let binaries = test_binaries(root, name)?;
        if binaries.is_empty() {
            return Err(format!(
                "`cargo test -p {name} --no-run` built no test executable, so nothing of \
                 {name} would run under valgrind"
            ));
        }
        for binary in binaries {
            let mut command = Command::new("valgrind");
            command
                .args(VALGRIND_ARGS)
                .arg(&binary.path)
                .arg("--test-threads=1")
                .current_dir(&binary.package_dir)
                .env("WEFT_VALGRIND", "1")
                // Property tests run 256 cases by default; under valgrind's ~50x slowdown a
                // smaller sample keeps the step short while still exercising every path.
                .env("PROPTEST_CASES", "24")
                .env("CARGO_MANIFEST_DIR", &binary.package_dir);
            if let Err(message) = super::run_command(&mut command) {
                eprintln!("[xtask] valgrind: {message}");
                failures.push(binary.path.display().to_string());
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "memcheck failed for {} test binar{}: {}",
            failures.len(),
            if failures.len() == 1 { "y" } else { "ies" },
            failures.join(", ")
        ))
    }
}

/// Fails with install instructions if `valgrind` cannot be run.
fn check_valgrind() -> Result<(), String> {
    match Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`valgrind --version` exited with {status}")),
        Err(e) => Err(format!(
            "valgrind is not on PATH ({e}); run .ci/run, which installs it, or install it \
             yourself: `sudo apt-get install valgrind` (or skip this step locally with \
             `cargo xtask test --skip valgrind`)"
        )),
    }
}

/// The workspace members, from `cargo metadata --no-deps`.
fn workspace_packages(root: &Path) -> Result<Vec<Package>, String> {
    let output = crate::cargo(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run `cargo metadata`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`cargo metadata` exited with {}", output.status));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("`cargo metadata` printed invalid JSON: {e}"))?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("`cargo metadata` output has no `packages` array")?;
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str();
            let manifest = package["manifest_path"].as_str();
            match (name, manifest.map(Path::new).and_then(Path::parent)) {
                (Some(name), Some(dir)) => Ok(Package {
                    name: name.to_owned(),
                    dir: dir.to_path_buf(),
                }),
                _ => Err("`cargo metadata` lists a package without name or manifest_path".into()),
            }
        })
        .collect()
}

/// Checks [`UNSAFE_CRATES`] against the sources: every listed crate must be a workspace
/// member, and every member whose `src/` uses `unsafe` must be listed or forbid
/// `unsafe_code` in its crate root.
fn audit_unsafe(packages: &[Package]) -> Result<(), String> {
    let mut problems = Vec::new();
    for listed in UNSAFE_CRATES {
        if !packages.iter().any(|p| p.name == *listed) {
            problems.push(format!(
                "`{listed}` is in UNSAFE_CRATES (xtask/src/test/valgrind.rs) but is not a \
                 workspace member; remove it from the list"
            ));
        }
    }
    for package in packages {
        if UNSAFE_CRATES.contains(&package.name.as_str()) {
            continue;
        }
        let src = package.dir.join("src");
        let mut files = Vec::new();
        collect_rs_files(&src, &mut files)
            .map_err(|e| format!("could not list {}: {e}", src.display()))?;
        let mut offenders = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("could not read {}: {e}", file.display()))?;
            if has_unsafe_keyword(&strip_comments_and_literals(&text)) {
                offenders.push(
                    file.strip_prefix(&package.dir)
                        .unwrap_or(file)
                        .display()
                        .to_string(),
                );
            }
        }
        if !offenders.is_empty() && !forbids_unsafe_code(&src)? {
            problems.push(format!(
                "`{}` uses `unsafe` ({}) but is not in UNSAFE_CRATES \
                 (xtask/src/test/valgrind.rs) and does not `#![forbid(unsafe_code)]`: add it \
                 to the list so its tests run under valgrind",
                package.name,
                offenders.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Whether the crate roots in `src` (`lib.rs`, `main.rs`, whichever exist, at least one)
/// all carry `#![forbid(unsafe_code)]`.
fn forbids_unsafe_code(src: &Path) -> Result<bool, String> {
    let mut roots = 0;
    for root in ["lib.rs", "main.rs"] {
        let path = src.join(root);
        if !path.is_file() {
            continue;
        }
        roots += 1;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("could not read {}: {e}", path.display()))?;
        if !has_forbid_unsafe_code(&strip_comments_and_literals(&text)) {
            return Ok(false);
        }
    }
    Ok(roots > 0)
}

/// Appends every `.rs` file under `dir` (recursively, in sorted order) to `out`. A missing
/// directory adds nothing.
fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Replaces Rust comments (line, doc and nested block comments) and the contents of
/// string, raw string and char literals with spaces, so keyword searches see only code.
/// Newlines are kept. Lifetimes and labels (`'a`) are left as they are.
fn strip_comments_and_literals(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, run: &[char]| {
        out.extend(run.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            let mut j = i;
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            let end = j.min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '\'' {
            // A char literal is `'x'` or `'\..'`; anything else is a lifetime or label.
            let end = if next == Some('\\') {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '\'' && chars[j] != '\n' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                (j + 1).min(chars.len())
            } else if chars.get(i + 2) == Some(&'\'') {
                i + 3
            } else {
                i + 1
            };
            if end == i + 1 {
                out.push(c);
            } else {
                blank(&mut out, &chars[i..end]);
            }
            i = end;
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push_str(&word);
            // Raw strings: r"..", r#".."#, br"..", cr#".."#.
            if matches!(word.as_str(), "r" | "br" | "cr") {
                let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
                if chars.get(i + hashes) == Some(&'"') {
                    let body = i + hashes + 1;
                    let closing: Vec<char> = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    let end = (body..chars.len())
                        .find(|&j| chars[j..].starts_with(&closing))
                        .map_or(chars.len(), |j| j + closing.len());
                    blank(&mut out, &chars[i..end]);
                    i = end;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether `c` can be part of an identifier.
fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Whether stripped source uses the keyword `unsafe` (as a whole identifier token, so
/// `unsafe_code` or `UnsafeCell` do not count).
fn has_unsafe_keyword(stripped: &str) -> bool {
    stripped
        .split(|c: char| !is_ident_char(c))
        .any(|word| word == "unsafe")
}

/// Whether stripped source holds an inner attribute `#![forbid(..)]` listing `unsafe_code`.
fn has_forbid_unsafe_code(stripped: &str) -> bool {
    let compact: String = stripped.chars().filter(|c| !c.is_whitespace()).collect();
    compact.match_indices("#![forbid(").any(|(at, open)| {
        let rest = &compact[at + open.len()..];
        rest.find(')')
            .is_some_and(|close| rest[..close].split(',').any(|lint| lint == "unsafe_code"))
    })
}

/// Builds the test executables of `package` (`cargo test -p <package> --no-run
/// --message-format=json`) and returns them. Compiler diagnostics are passed on to stderr.
fn test_binaries(root: &Path, package: &str) -> Result<Vec<TestBinary>, String> {
    let mut command = crate::cargo(root);
    command.args(["test", "-p", package, "--no-run", "--message-format=json"]);
    let line = crate::display_command(&command);
    println!("[xtask] $ {line}");
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let binaries = parse_cargo_messages(&stdout);
    if !output.status.success() {
        return Err(format!("`{line}` exited with {}", output.status));
    }
    Ok(binaries)
}

/// Reads cargo's JSON messages: returns the executables of `compiler-artifact`s built
/// with the test profile, and prints the rendered text of `compiler-message`s to stderr.
fn parse_cargo_messages(stdout: &str) -> Vec<TestBinary> {
    let mut binaries = Vec::new();
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match message["reason"].as_str() {
            Some("compiler-message") => {
                if let Some(rendered) = message["message"]["rendered"].as_str() {
                    eprint!("{rendered}");
                }
            }
            Some("compiler-artifact") if message["profile"]["test"] == Value::Bool(true) => {
                let executable = message["executable"].as_str();
                let package_dir = message["manifest_path"]
                    .as_str()
                    .map(Path::new)
                    .and_then(Path::parent);
                if let (Some(executable), Some(package_dir)) = (executable, package_dir) {
                    let binary = TestBinary {
                        path: PathBuf::from(executable),
                        package_dir: package_dir.to_path_buf(),
                    };
                    if !binaries.contains(&binary) {
                        binaries.push(binary);
                    }
                }
            }
            _ => {}
        }
    }
    binaries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_hides_comments_and_literals_but_keeps_code() {
        let src = r####"
// unsafe in a line comment
/// unsafe in a doc comment
/* outer /* unsafe nested */ still comment unsafe */
let a = "unsafe \" still string unsafe";
let b = r#"raw "unsafe" string"#;
let c = '"'; let d = '\''; fn f<'a>(x: &'a u8) {}
let e = b"unsafe";
unsafe { real() }
"####;
        let stripped = strip_comments_and_literals(src);
        assert_eq!(stripped.matches("unsafe").count(), 1, "{stripped}");
        assert!(stripped.contains("unsafe { real() }"));
        assert!(stripped.contains("fn f<'a>(x: &'a u8) {}"));
        assert_eq!(stripped.lines().count(), src.lines().count());
    }

    #[test]
    fn unsafe_keyword_is_a_whole_token() {
        assert!(has_unsafe_keyword("unsafe impl Send for X {}"));
        assert!(has_unsafe_keyword("pub unsafe fn f() {}"));
        assert!(!has_unsafe_keyword(
            "#![deny(unsafe_op_in_unsafe_fn)] use UnsafeCell;"
        ));
        assert!(!has_unsafe_keyword(&strip_comments_and_literals(
            "/// c.with_mut(|p| unsafe { *p += 1 });\nfn with_mut() {}"
        )));
    }

    #[test]
    fn forbid_attribute_is_found_in_lint_lists() {
        assert!(has_forbid_unsafe_code(
            "//! docs\n#![forbid(unsafe_code)]\n"
        ));
        assert!(has_forbid_unsafe_code(
            "#![forbid( missing_docs,\n unsafe_code )]"
        ));
        assert!(!has_forbid_unsafe_code("#![deny(unsafe_code)]"));
        assert!(!has_forbid_unsafe_code(
            "#![forbid(unsafe_op_in_unsafe_fn)]"
        ));
        assert!(!has_forbid_unsafe_code(&strip_comments_and_literals(
            "// #![forbid(unsafe_code)]"
        )));
    }

    #[test]
    fn audit_requires_listing_or_forbidding() {
        let dir = crate::TempDir::new("audit");
        let write = |rel: &str, text: &str| {
            let path = dir.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "safe/src/lib.rs",
            "#![forbid(unsafe_code)]\n//! unsafe in docs\n",
        );
        write(
            "docs_only/src/lib.rs",
            "/// `unsafe { .. }`\npub fn f() {}\n",
        );
        write("sneaky/src/lib.rs", "mod inner;\n");
        write("sneaky/src/inner/mod.rs", "pub fn f() { unsafe { g() } }\n");
        let package = |name: &str| Package {
            name: name.to_owned(),
            dir: dir.0.join(name),
        };
        let mut packages = vec![package("safe"), package("docs_only")];
        packages.extend(UNSAFE_CRATES.iter().map(|name| package(name)));
        audit_unsafe(&packages).unwrap();

        packages.push(package("sneaky"));
        let err = audit_unsafe(&packages).unwrap_err();
        assert!(err.contains("`sneaky` uses `unsafe`"), "{err}");
        assert!(err.contains("inner/mod.rs"), "names the file: {err}");

        let err = audit_unsafe(&packages[..2]).unwrap_err();
        assert!(
            err.contains(&format!("`{}` is in UNSAFE_CRATES", UNSAFE_CRATES[0])),
            "{err}"
        );
    }

    #[test]
    fn test_artifacts_are_picked_from_cargo_json() {
        let stdout = concat!(
            r#"{"reason":"compiler-artifact","manifest_path":"/ws/patterns/lockfree/Cargo.toml","profile":{"test":true},"executable":"/ws/target/debug/deps/weft_lockfree-abc"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","manifest_path":"/ws/patterns/lockfree/Cargo.toml","profile":{"test":false},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","manifest_path":"/ws/patterns/lockfree/Cargo.toml","profile":{"test":false},"executable":"/ws/target/debug/examples/demo"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","manifest_path":"/ws/patterns/lockfree/Cargo.toml","profile":{"test":true},"executable":"/ws/target/debug/deps/mpmc-def"}"#,
            "\n",
            "not json\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        let binaries = parse_cargo_messages(stdout);
        let paths: Vec<_> = binaries.iter().map(|b| b.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/ws/target/debug/deps/weft_lockfree-abc",
                "/ws/target/debug/deps/mpmc-def"
            ]
        );
        assert_eq!(binaries[0].package_dir, Path::new("/ws/patterns/lockfree"));
    }
}
