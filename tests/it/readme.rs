//! The README's walkthrough, pasted top to bottom as a new user would: every shell block from
//! "Call it" to "Administration" runs, in order, in one bash with `set -e`, against a real
//! `dunning serve` on a fresh embedded database whose first API key the process printed into
//! `api-key.txt`. A call that fails (a placeholder left in, a process in the wrong state, a
//! payment plan that does not add up) fails the test with the script's output.
//!
//! Left out, because they do not end or are not installed: the `WatchEvents` commands (a
//! stream runs until stopped) and the `grpcurl` block (grpcurl has no Debian package; the
//! README says so and uses `buf curl`, which this test installs as CI does when it is missing).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shell the README gives between "## Call it" and "## Administration".
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme.find("\n## Call it").expect("a Call it section");
    let end = readme
        .find("\n## Administration")
        .expect("an Administration section");
    let mut rest = &readme[start..end];
    let mut script = String::new();
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed block");
        let block = &body[..close];
        rest = &body[close + 3..];
        if !block.contains("grpcurl") {
            script.push_str(&without_streams(block));
        }
    }
    script
}

/// `block` without its `WatchEvents` commands (continuation lines included).
fn without_streams(block: &str) -> String {
    let mut kept = String::new();
    let mut command = String::new();
    for line in block.lines() {
        command.push_str(line);
        command.push('\n');
        if line.ends_with('\\') {
            continue;
        }
        if !command.contains("WatchEvents") {
            kept.push_str(&command);
        }
        command.clear();
    }
    kept
}

/// `buf`: CI's copy, one on the PATH, or installed with npm where CI installs it.
fn buf() -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/.tools");
    let installed = tools.join("node_modules/.bin/buf");
    if installed.exists() {
        return installed;
    }
    if let Ok(found) = std::process::Command::new("sh")
        .args(["-c", "command -v buf"])
        .output()
        && found.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    }
    let status = std::process::Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&tools)
        .arg("@bufbuild/buf@1")
        .status()
        .expect("npm runs (buf is installed with it)");
    assert!(status.success(), "npm install @bufbuild/buf@1");
    installed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_runs_top_to_bottom() {
    let script = walkthrough();
    assert!(
        script.contains("CreateCustomer") && script.contains("GetCollectionsReport"),
        "the walkthrough was found: {script}"
    );
    let buf = buf();
    let dir = std::env::temp_dir().join(format!("dunning-readme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = std::fs::File::create(dir.join("api-key.txt")).unwrap();
    let mut serve = crate::common::spawn_serve_printing_to(
        &format!("sqlite://{}?mode=rwc", dir.join("dunning.db").display()),
        &[(
            "DUNNING_OUTBOX_DIR",
            dir.join("outbox").display().to_string(),
        )],
        key_file,
    )
    .await;
    // The key is printed once the server runs.
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(log) = serve.logs.recv().await {
            let message = log["fields"]["message"].as_str().unwrap_or_default();
            if message.starts_with("created the first organization") {
                return;
            }
        }
        panic!("dunning serve exited");
    })
    .await
    .expect("the first organization is created");

    let script = format!(
        "set -euo pipefail\nexport PATH={}:$PATH\n{}",
        buf.parent().unwrap().display(),
        script.replace("127.0.0.1:50051", &serve.addr)
    );
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the walkthrough finishes")
        .expect("bash runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the walkthrough failed:\n{text}");
    // The story's end: the payment the payments service reported settled the request.
    assert!(
        text.contains("PAYMENT_REQUEST_STATUS_SUCCEEDED"),
        "the payment request was settled:\n{text}"
    );
    serve.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
