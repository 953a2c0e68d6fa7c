//! `keel eval`: each task in a fresh scratch workspace, a `keel run` session on it (a
//! child process of this binary, so a crash or a timeout costs one task), then the check
//! with the original tests restored. Progress on stderr, a summary table (or `--json`
//! records) at the end, and the run saved as JSON for `keel eval --compare` — after
//! every task, so an eval that is stopped keeps what it did.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_eval::{
    Metrics, Record, Run, Task, compare_table, discover, prepare, run_check, summary_table,
};
use keel_tools::exec;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cli::EvalArgs;
use crate::config::keel_home;

/// The session's own output kept per task (JSON lines; deltas make it long).
const SESSION_OUTPUT: usize = 256 * 1024 * 1024;
/// How long the check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(args: EvalArgs) -> Result<u8> {
    if let Some(files) = &args.compare {
        let [a, b] = files.as_slice() else {
            bail!("--compare takes two result files");
        };
        let load = |p: &PathBuf| -> Result<Run> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a keel eval result", p.display()))
        };
        print!("{}", compare_table(&load(a)?, &load(b)?));
        return Ok(0);
    }
    let Some(tasks_dir) = args.tasks_dir.clone() else {
        bail!("name a folder of tasks (or one task): keel eval DIR");
    };
    let mut tasks = discover(&tasks_dir, args.tasks.as_deref())?;
    if let Some(limit) = args.limit {
        tasks.truncate(limit);
    }
    if tasks.is_empty() {
        bail!(
            "no tasks in {} (an Exercism exercise has .docs/instructions.md and .meta/config.json; a plain task has eval.toml){}",
            tasks_dir.display(),
            args.tasks
                .as_deref()
                .map(|p| format!(" matching `{p}`"))
                .unwrap_or_default()
        );
    }
    let model = args.model.clone().unwrap_or_else(|| {
        std::env::var("KEEL_MODEL")
            .unwrap_or_else(|_| format!("embedded:{}", keel_engine::DEFAULT_MODEL))
    });
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out_file = match &args.out {
        Some(path) => path.clone(),
        None => keel_home()
            .context("cannot find keel's data directory: set KEEL_HOME (or HOME), or pass --out")?
            .join("evals")
            .join(format!("{started}-{}.json", sanitise(&model))),
    };
    let work = out_file.with_extension("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let exe = match &args.keel {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find the keel binary")?,
    };
    eprintln!(
        "keel eval: {} tasks from {} with {model}, {} jobs; workspaces in {}",
        tasks.len(),
        tasks_dir.display(),
        args.jobs.max(1),
        work.display()
    );
    let setup = Arc::new(Setup {
        exe,
        model: model.clone(),
        work: work.clone(),
        max_iterations: args.max_iterations,
        timeout: Duration::from_secs(args.timeout),
        temperature: args.temperature,
    });
    let total = tasks.len();
    if let Some(parent) = out_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The run as far as it got, saved after every task: a killed eval keeps its records.
    let partial = Arc::new(std::sync::Mutex::new(Run {
        model: model.clone(),
        tasks_dir: tasks_dir.display().to_string(),
        started,
        max_iterations: args.max_iterations,
        timeout_secs: args.timeout,
        records: Vec::new(),
    }));
    let slots = Arc::new(Semaphore::new(args.jobs.max(1)));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for task in tasks {
        // Taken before the task starts, so tasks start in name order.
        let slot = slots.clone().acquire_owned().await;
        let (setup, done, partial, out_file) = (
            setup.clone(),
            done.clone(),
            partial.clone(),
            out_file.clone(),
        );
        handles.push(tokio::spawn(async move {
            let _slot = slot;
            let record = run_task(&setup, &task).await;
            if let Ok(mut run) = partial.lock() {
                run.records.push(record.clone());
                run.records.sort_by(|a, b| a.task.cmp(&b.task));
                if let Ok(text) = serde_json::to_string_pretty(&*run) {
                    let _ = std::fs::write(&out_file, text);
                }
            }
            let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            eprintln!(
                "[{n}/{total}] {}: {} ({}{}, {} iterations, {} calls, {:.0} s)",
                record.task,
                if record.passed { "PASS" } else { "fail" },
                if record.timed_out {
                    "timeout"
                } else {
                    &record.metrics.outcome
                },
                if record.false_done {
                    ", FALSE DONE"
                } else {
                    ""
                },
                record.metrics.iterations,
                record.metrics.tool_calls,
                record.wall_secs
            );
            record
        }));
    }
    let mut records = Vec::with_capacity(total);
    for handle in handles {
        records.push(handle.await.context("an eval task panicked")?);
    }
    let run = Run {
        model,
        tasks_dir: tasks_dir.display().to_string(),
        started,
        max_iterations: args.max_iterations,
        timeout_secs: args.timeout,
        records,
    };
    std::fs::write(&out_file, serde_json::to_string_pretty(&run)?)
        .with_context(|| format!("writing {}", out_file.display()))?;
    if args.json {
        for record in &run.records {
            println!("{}", serde_json::to_string(record)?);
        }
    } else {
        print!("{}", summary_table(&run));
    }
    eprintln!("keel eval: results in {}", out_file.display());
    Ok(0)
}

struct Setup {
    exe: PathBuf,
    model: String,
    work: PathBuf,
    max_iterations: u32,
    timeout: Duration,
    temperature: f32,
}

fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One task: prepare, session, check. Every fault becomes a failed record.
async fn run_task(setup: &Setup, task: &Task) -> Record {
    let started = Instant::now();
    let workspace = setup.work.join(&task.name);
    let mut record = Record {
        task: task.name.clone(),
        passed: false,
        metrics: Metrics {
            outcome: "none".into(),
            ..Metrics::default()
        },
        wall_secs: 0.0,
        false_done: false,
        tampered: Vec::new(),
        timed_out: false,
        session_id: None,
        check_output: String::new(),
        targeted: !task.targets.is_empty(),
        found_at: None,
    };
    let _ = std::fs::remove_dir_all(&workspace);
    if let Err(e) = prepare(task, &workspace) {
        record.metrics.error = Some(format!("preparing the workspace: {e}"));
        return record;
    }
    match session(setup, task, &workspace).await {
        Ok((output, timed_out)) => {
            record.metrics = Metrics::from_jsonl(&output);
            record.found_at = record.metrics.first_opened(&task.targets);
            record.timed_out = timed_out;
            record.session_id = output.lines().find_map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).ok()?;
                (event["type"] == "session")
                    .then(|| event["session_id"].as_str().map(str::to_string))?
            });
            let _ = std::fs::write(workspace.with_extension("jsonl"), &output);
        }
        Err(e) => record.metrics.error = Some(format!("running keel: {e}")),
    }
    let check = {
        let (task, workspace) = (task.clone(), workspace.clone());
        tokio::task::spawn_blocking(move || run_check(&task, &workspace, CHECK_TIMEOUT)).await
    };
    match check {
        Ok(Ok(check)) => {
            record.passed = check.passed;
            record.tampered = check.tampered;
            record.check_output = check.output;
        }
        Ok(Err(e)) => record.check_output = format!("the check could not run: {e}"),
        Err(e) => record.check_output = format!("the check panicked: {e}"),
    }
    record.false_done = record.metrics.outcome == "verified" && !record.passed;
    record.wall_secs = started.elapsed().as_secs_f64();
    record
}

/// Runs `keel run --json` on the workspace; its output and whether it timed out.
async fn session(setup: &Setup, task: &Task, workspace: &Path) -> std::io::Result<(String, bool)> {
    let mut command = std::process::Command::new(&setup.exe);
    command
        .arg("run")
        .arg("--json")
        .arg("--workspace")
        .arg(workspace)
        .arg("--model")
        .arg(&setup.model)
        .arg("--max-iterations")
        .arg(setup.max_iterations.to_string());
    if task.test_command.trim().is_empty() {
        // The task gives the session no tests (its check would give the answer away).
        command.arg("--no-verify");
    } else {
        command.arg("--test-command").arg(&task.test_command);
    }
    command
        .arg(&task.prompt)
        .current_dir(workspace)
        // Sessions go to a store of the run's own, beside its workspaces.
        .env("KEEL_HOME", setup.work.join("keel-home"))
        .env("KEEL_TEMPERATURE", setup.temperature.to_string());
    let result = exec::run(
        command,
        setup.timeout,
        SESSION_OUTPUT,
        &CancellationToken::new(),
    )
    .await?;
    Ok((result.output, result.ending == exec::Ending::TimedOut))
}
