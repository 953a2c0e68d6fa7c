//! Starts upstream llama.cpp's server (PyPI `xllamacpp`, via scripts/llama_server.py)
//! on 127.0.0.1 with the small GGUF model that scripts/setup.sh installs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct LlamaServer {
    child: Child,
    /// The server root, e.g. `http://127.0.0.1:41234` (the OpenAI API is under `/v1`).
    pub url: String,
}

/// The model file: `$KEEL_TEST_GGUF`, else where scripts/setup.sh puts it.
pub fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("KEEL_TEST_GGUF") {
        return PathBuf::from(path);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("keel/models/gemma-3-270m-q4_k_m.gguf")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/llama_server.py")
}

impl LlamaServer {
    /// A running server, or `None` (said loudly) when scripts/setup.sh was not run.
    /// With `KEEL_REQUIRE_LLAMA_SERVER=1` (set by scripts/test.sh) a missing install
    /// fails the test instead.
    pub fn start(ctx: u32) -> Option<Self> {
        let model = model_path();
        let installed = model.is_file()
            && Command::new("python3")
                .args(["-c", "import xllamacpp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            let message = format!(
                "llama.cpp server or model not installed (model: {}); run scripts/setup.sh",
                model.display()
            );
            if std::env::var("KEEL_REQUIRE_LLAMA_SERVER").as_deref() == Ok("1") {
                panic!("{message}");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            return None;
        }
        let mut child = Command::new("python3")
            .arg(script())
            .arg("--model")
            .arg(&model)
            .args(["--ctx", &ctx.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/llama_server.py");
        let stdout = child.stdout.take().expect("server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("READY ") => break line[6..].trim().to_string(),
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    panic!("the llama.cpp server did not start");
                }
            }
        };
        Some(LlamaServer { child, url })
    }

    /// The `openai:` spec for this server.
    pub fn spec(&self) -> String {
        format!("openai:gemma@{}/v1", self.url)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
