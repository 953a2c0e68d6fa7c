//! `keel sessions`: what the store holds.

use anyhow::{Context, Result};
use keel_agent::EventSink;
use keel_store::Store;

use crate::cli::SessionsCommand;
use crate::printer::Transcript;

/// Opens the store under `$KEEL_HOME`.
pub fn open_store() -> Result<Store> {
    let home = crate::config::keel_home()
        .context("cannot find keel's data directory: set KEEL_HOME (or HOME)")?;
    Ok(Store::open(&home.join("keel.db"))?)
}

fn when(ms: i64) -> String {
    // UTC, second precision: YYYY-MM-DD HH:MM:SS.
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn run(command: SessionsCommand) -> Result<u8> {
    let store = open_store()?;
    match command {
        SessionsCommand::List {
            workspace,
            limit,
            json,
        } => {
            let workspace = match workspace {
                Some(dir) => Some(
                    dir.canonicalize()
                        .with_context(|| format!("cannot open workspace {}", dir.display()))?
                        .display()
                        .to_string(),
                ),
                None => None,
            };
            for s in store.sessions(workspace.as_deref(), limit)? {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": s.id, "workspace": s.workspace, "model": s.model,
                            "started_at_ms": s.started_at, "updated_at_ms": s.updated_at,
                            "turns": s.turns, "outcome": s.outcome,
                        })
                    );
                } else {
                    println!(
                        "{}  {}  {}  {:>3} turn{}  {:<14}  {}",
                        s.id,
                        when(s.started_at),
                        when(s.updated_at),
                        s.turns,
                        if s.turns == 1 { " " } else { "s" },
                        s.outcome.as_deref().unwrap_or("-"),
                        s.workspace
                    );
                }
            }
        }
        SessionsCommand::Show { id } => {
            let id = store.resolve(&id)?;
            let printer = Transcript::new().with_user_messages();
            for event in store.events(&id)? {
                printer.emit(&event);
            }
        }
        SessionsCommand::Export { id } => {
            let id = store.resolve(&id)?;
            for line in store.export(&id)? {
                println!("{line}");
            }
        }
        SessionsCommand::Delete { id } => {
            let id = store.resolve(&id)?;
            store.delete(&id)?;
            println!("deleted session {id}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(super::when(0), "1970-01-01 00:00:00");
        assert_eq!(super::when(1_795_000_000_000), "2026-11-18 11:06:40");
        assert_eq!(super::when(951_782_400_000), "2000-02-29 00:00:00");
    }
}
