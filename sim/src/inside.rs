//! The simulated inside of a guest: what `pct exec` / `pct push` and the QEMU agent act on.
//!
//! A guest keeps a file map (with each file's mode, and the mode it had when its content
//! was written), a command log and service states. Commands are interpreted, one line at
//! a time, by a deliberately small shell: the forms Phoenix's feature scripts and checks
//! use (`echo … > FILE`, `cat FILE`, the marker guard, `install`/`cp`/`mv`, `chmod`,
//! `rm`, `systemctl`, `curl`, `exit`) have effects; any other line succeeds silently. Scripted
//! answers (`PUT /admin/guests/{vmid}/answers`) make a line fail, print, or take time, so
//! failures and crashes mid-script can be tested. A run is a sequence of steps; the caller
//! drives it and may sleep between steps without holding the simulator's lock.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One line run inside a guest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CommandRecord {
    pub command: String,
    /// `None` while it runs (or when the run was cut off by a crash).
    pub exit: Option<i32>,
    pub started_ms: u64,
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

/// How a line containing `matches` should answer instead of its usual effect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub matches: String,
    /// Exit code; with an exit code or output the line has no other effect.
    #[serde(default)]
    pub exit: Option<i32>,
    #[serde(default)]
    pub output: Option<String>,
    /// The line takes this long before it answers.
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer this many times, then forget the answer; `None` is for ever.
    #[serde(default)]
    pub times: Option<u32>,
}

/// Files, command log, services and scripted answers of one guest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inside {
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
    /// Each file's permission bits; a file without an entry has [`DEFAULT_MODE`].
    #[serde(default)]
    pub modes: std::collections::BTreeMap<String, u32>,
    /// The mode each file had when its present content was written into it: content
    /// written while others could read the file was exposed, whatever a later `chmod` did.
    #[serde(default)]
    pub written_with: std::collections::BTreeMap<String, u32>,
    #[serde(default)]
    pub log: Vec<CommandRecord>,
    /// systemd units and their state (`running`, `stopped`).
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub answers: Vec<Answer>,
}

/// The mode of a file created without one: `0666` under the usual umask `022`.
pub const DEFAULT_MODE: u32 = 0o644;

/// A mode as `pct push --perms` reads it: octal by default, `0x` for hexadecimal.
pub fn parse_perms(perms: &str) -> Result<u32, String> {
    let invalid = || format!("invalid mode: '{perms}'");
    let parsed = match perms
        .strip_prefix("0x")
        .or_else(|| perms.strip_prefix("0X"))
    {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => u32::from_str_radix(perms, 8),
    };
    match parsed {
        Ok(mode) if !perms.is_empty() && mode <= 0o7777 => Ok(mode),
        _ => Err(invalid()),
    }
}

impl Inside {
    /// The permission bits of `path`, when it exists.
    pub fn mode(&self, path: &str) -> Option<u32> {
        self.files
            .contains_key(path)
            .then(|| self.modes.get(path).copied().unwrap_or(DEFAULT_MODE))
    }

    /// Writes `content` into `path`: a new file is created with `new_mode`, an existing
    /// one keeps its mode (and is truncated), as `open(O_CREAT|O_TRUNC, new_mode)` does.
    pub fn write(&mut self, path: &str, content: String, new_mode: u32) {
        let mode = self.mode(path).unwrap_or(new_mode);
        self.files.insert(path.to_owned(), content);
        self.modes.insert(path.to_owned(), mode);
        self.written_with.insert(path.to_owned(), mode);
    }

    /// `pct push … [--perms MODE]`: the file is opened (created with no permissions at
    /// all when new), given its mode, and only then written; without `--perms` a new
    /// file gets the default mode and an existing one keeps its own.
    pub fn push(&mut self, path: &str, content: String, perms: Option<u32>) {
        let mode = perms.or(self.mode(path)).unwrap_or(DEFAULT_MODE);
        self.files.insert(path.to_owned(), content);
        self.modes.insert(path.to_owned(), mode);
        self.written_with.insert(path.to_owned(), mode);
    }

    fn remove(&mut self, path: &str) -> Option<(String, u32, Option<u32>)> {
        let content = self.files.remove(path)?;
        let mode = self.modes.remove(path).unwrap_or(DEFAULT_MODE);
        Some((content, mode, self.written_with.remove(path)))
    }
}

/// A command in flight: the lines left and what it printed so far.
#[derive(Debug)]
pub struct Run {
    lines: std::collections::VecDeque<String>,
    pub output: String,
    /// The log entry of the line that is waiting out its delay.
    pending: Option<(usize, i32, String)>,
}

/// What one step of a run did.
pub enum Step {
    /// Sleep this long (without the lock), then step again.
    Wait(Duration),
    Continue,
    Exited(i32),
}

/// Lock files taken with `flock FILE …`, as the run that holds them.
pub fn flock_target(argv: &[String]) -> Option<(&str, &[String])> {
    match argv {
        [flock, file, rest @ ..] if flock == "flock" && !rest.is_empty() => {
            Some((file.as_str(), rest))
        }
        _ => None,
    }
}

impl Run {
    /// A run of `argv`: `sh FILE` runs the file's lines, `sh -c SCRIPT` the script's, any
    /// other argv is one line.
    pub fn new(inside: &Inside, argv: &[String]) -> Result<Self, String> {
        let text = match argv {
            [sh, flag, script] if is_shell(sh) && flag == "-c" => script.clone(),
            [sh, file] if is_shell(sh) => inside
                .files
                .get(file)
                .cloned()
                .ok_or_else(|| format!("{sh}: 0: cannot open {file}: No such file"))?,
            [] => return Err("no command".into()),
            _ => argv.join(" "),
        };
        Ok(Self {
            lines: text.lines().map(str::to_owned).collect(),
            output: String::new(),
            pending: None,
        })
    }

    /// Runs the next line (or finishes the one waiting out its delay).
    pub fn step(&mut self, inside: &mut Inside, now_ms: u64) -> Step {
        if let Some((entry, exit, printed)) = self.pending.take() {
            return self.finish(inside, entry, exit, &printed, now_ms);
        }
        let Some(line) = self.lines.pop_front() else {
            return Step::Exited(0);
        };
        let line = line.trim().to_owned();
        if line.is_empty() || line.starts_with('#') || line.starts_with("set ") {
            return Step::Continue;
        }
        let entry = inside.log.len();
        inside.log.push(CommandRecord {
            command: line.clone(),
            exit: None,
            started_ms: now_ms,
            finished_ms: None,
        });
        let answer = take_answer(inside, &line);
        let (exit, printed) = match &answer {
            Some(a) if a.exit.is_some() || a.output.is_some() => {
                (a.exit.unwrap_or(0), a.output.clone().unwrap_or_default())
            }
            _ => effect(inside, &line),
        };
        match answer {
            Some(a) if a.delay_ms > 0 => {
                self.pending = Some((entry, exit, printed));
                Step::Wait(Duration::from_millis(a.delay_ms))
            }
            _ => self.finish(inside, entry, exit, &printed, now_ms),
        }
    }

    fn finish(
        &mut self,
        inside: &mut Inside,
        entry: usize,
        exit: i32,
        printed: &str,
        now_ms: u64,
    ) -> Step {
        if let Some(record) = inside.log.get_mut(entry) {
            record.exit = Some(exit);
            record.finished_ms = Some(now_ms);
        }
        self.output.push_str(printed);
        match exit {
            // `exit N` and the marker guard end the run; any failure does too (`set -e`).
            EXIT_NOW => {
                self.lines.clear();
                Step::Exited(0)
            }
            0 => Step::Continue,
            code => {
                self.lines.clear();
                Step::Exited(code)
            }
        }
    }
}

/// Internal code for "the run ends here with success" (`exit 0`, the marker guard).
const EXIT_NOW: i32 = i32::MIN;

fn is_shell(program: &str) -> bool {
    matches!(program, "sh" | "/bin/sh" | "bash" | "/bin/bash")
}

pub fn take_answer(inside: &mut Inside, line: &str) -> Option<Answer> {
    let index = inside
        .answers
        .iter()
        .position(|a| line.contains(&a.matches))?;
    let answer = inside.answers[index].clone();
    if let Some(times) = &mut inside.answers[index].times {
        *times = times.saturating_sub(1);
        if *times == 0 {
            inside.answers.remove(index);
        }
    }
    Some(answer)
}

/// The effect of one line: its exit code and what it prints.
fn effect(inside: &mut Inside, line: &str) -> (i32, String) {
    if let Some((file, expected)) = marker_guard(line) {
        let done = inside.files.get(file).is_some_and(|c| c.trim() == expected);
        return (if done { EXIT_NOW } else { 0 }, String::new());
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["exit", code] => match code.parse::<i32>() {
            Ok(0) => (EXIT_NOW, String::new()),
            Ok(code) => (code, String::new()),
            Err(_) => (2, format!("exit: Illegal number: {code}\n")),
        },
        ["echo", rest @ ..] => match rest.iter().position(|w| *w == ">") {
            Some(at) if at + 1 < rest.len() => {
                let text = unquote(&rest[..at].join(" "));
                inside.write(rest[at + 1], format!("{text}\n"), DEFAULT_MODE);
                (0, String::new())
            }
            _ => (0, format!("{}\n", unquote(&rest.join(" ")))),
        },
        ["cat", file, ..] => match inside.files.get(*file) {
            Some(content) => (0, content.clone()),
            None => (1, format!("cat: {file}: No such file or directory\n")),
        },
        // GNU install replaces the destination with a new file created 0600, copies into
        // it and then gives it its mode (0755 without `-m`).
        ["install", args @ .., src, dst] => match read(inside, src) {
            Some(content) => {
                let mode = match args.iter().position(|a| *a == "-m") {
                    Some(at) => match args.get(at + 1).map(|m| parse_perms(m)) {
                        Some(Ok(mode)) => mode,
                        _ => return (1, "install: invalid mode\n".into()),
                    },
                    None => 0o755,
                };
                inside.remove(dst);
                inside.write(dst, content, 0o600);
                inside.modes.insert((*dst).to_owned(), mode);
                (0, String::new())
            }
            None => (
                1,
                format!("install: cannot stat '{src}': No such file or directory\n"),
            ),
        },
        ["cp", .., src, dst] => match read(inside, src) {
            Some(content) => {
                let mode = inside.mode(src).unwrap_or(DEFAULT_MODE);
                inside.write(dst, content, mode);
                (0, String::new())
            }
            None => (
                1,
                format!("cp: cannot stat '{src}': No such file or directory\n"),
            ),
        },
        // A rename: the file keeps its content, its mode and how it was written.
        ["mv", .., src, dst] => match inside.remove(src) {
            Some((content, mode, written_with)) => {
                inside.remove(dst);
                inside.files.insert((*dst).to_owned(), content);
                inside.modes.insert((*dst).to_owned(), mode);
                if let Some(w) = written_with {
                    inside.written_with.insert((*dst).to_owned(), w);
                }
                (0, String::new())
            }
            None => (
                1,
                format!("mv: cannot stat '{src}': No such file or directory\n"),
            ),
        },
        // A numeric mode is kept; symbolic ones (`+x`) are taken without effect.
        ["chmod", mode, file] if mode.bytes().all(|b| b.is_ascii_digit()) => {
            match (parse_perms(mode), inside.files.contains_key(*file)) {
                (Ok(mode), true) => {
                    inside.modes.insert((*file).to_owned(), mode);
                    (0, String::new())
                }
                (Err(_), _) => (1, format!("chmod: invalid mode: '{mode}'\n")),
                (_, false) => (
                    1,
                    format!("chmod: cannot access '{file}': No such file or directory\n"),
                ),
            }
        }
        ["rm", .., file] => {
            inside.remove(file);
            (0, String::new())
        }
        ["systemctl", "is-active", unit] => {
            let running = inside.services.get(*unit).is_some_and(|s| s == "running");
            let state = if running { "active" } else { "inactive" };
            (if running { 0 } else { 3 }, format!("{state}\n"))
        }
        ["systemctl", verb, rest @ ..] => {
            let state = match *verb {
                "start" | "restart" | "reload-or-restart" => "running",
                "enable" if rest.contains(&"--now") => "running",
                "stop" => "stopped",
                "disable" if rest.contains(&"--now") => "stopped",
                _ => return (0, String::new()),
            };
            for unit in rest.iter().filter(|w| !w.starts_with('-')) {
                inside.services.insert((*unit).to_owned(), state.into());
            }
            (0, String::new())
        }
        // The simulated guest's services answer: checks see HTTP 200 unless an answer
        // says otherwise.
        ["curl", ..] => (0, "200".into()),
        _ => (0, String::new()),
    }
}

/// A file's content, `/dev/null` being empty.
fn read(inside: &Inside, path: &str) -> Option<String> {
    match path {
        "/dev/null" => Some(String::new()),
        _ => inside.files.get(path).cloned(),
    }
}

/// `if [ "$(cat FILE 2>/dev/null)" = "HASH" ]; then exit 0; fi`: the marker guard.
fn marker_guard(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("if [ \"$(cat ")?;
    let (file, rest) = rest.split_once(" 2>/dev/null)\" = \"")?;
    let (expected, rest) = rest.split_once('"')?;
    (rest.trim() == "]; then exit 0; fi").then_some((file, expected))
}

fn unquote(text: &str) -> String {
    let t = text.trim();
    for quote in ['\'', '"'] {
        if let Some(inner) = t.strip_prefix(quote).and_then(|s| s.strip_suffix(quote)) {
            return inner.to_owned();
        }
    }
    t.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(inside: &mut Inside, argv: &[&str]) -> (i32, String) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut run = Run::new(inside, &argv).unwrap();
        loop {
            match run.step(inside, 1) {
                Step::Exited(code) => return (code, run.output),
                Step::Wait(_) | Step::Continue => {}
            }
        }
    }

    #[test]
    fn a_script_writes_files_starts_services_and_its_guard_skips_a_second_run() {
        let mut inside = Inside::default();
        inside.files.insert("/tmp/u".into(), "[Unit]\n".into());
        let script = "set -eu\n\
            if [ \"$(cat /m 2>/dev/null)\" = \"h1\" ]; then exit 0; fi\n\
            install -m 0644 /tmp/u /etc/systemd/system/x.service\n\
            systemctl enable --now x.service\n\
            echo h1 > /m";
        inside.files.insert("/s.sh".into(), script.into());
        assert_eq!(run(&mut inside, &["sh", "/s.sh"]).0, 0);
        assert_eq!(inside.files["/etc/systemd/system/x.service"], "[Unit]\n");
        assert_eq!(inside.services["x.service"], "running");
        assert_eq!(inside.files["/m"], "h1\n");
        let lines = inside.log.len();
        assert_eq!(run(&mut inside, &["sh", "/s.sh"]).0, 0);
        assert_eq!(inside.log.len(), lines + 1, "only the guard ran");
    }

    #[test]
    fn answers_fail_a_line_and_stop_the_script_then_run_out() {
        let mut inside = Inside::default();
        inside.answers.push(Answer {
            matches: "apt-get".into(),
            exit: Some(100),
            output: Some("E: Unable to locate package\n".into()),
            times: Some(1),
            ..Answer::default()
        });
        let script = "apt-get install -y x\necho done > /d";
        assert_eq!(
            run(&mut inside, &["sh", "-c", script]),
            (100, "E: Unable to locate package\n".into())
        );
        assert!(!inside.files.contains_key("/d"));
        assert_eq!(run(&mut inside, &["sh", "-c", script]).0, 0);
        assert!(inside.files.contains_key("/d"));
    }

    #[test]
    fn a_delayed_line_waits_with_its_log_entry_open() {
        let mut inside = Inside::default();
        inside.answers.push(Answer {
            matches: "sleepy".into(),
            delay_ms: 500,
            ..Answer::default()
        });
        let argv = vec!["sleepy".to_string()];
        let mut r = Run::new(&inside, &argv).unwrap();
        assert!(matches!(r.step(&mut inside, 1), Step::Wait(_)));
        assert_eq!(inside.log[0].exit, None);
        assert!(matches!(r.step(&mut inside, 2), Step::Continue));
        assert_eq!(inside.log[0].exit, Some(0));
    }

    #[test]
    fn pct_push_gives_the_file_its_perms_before_writing_as_pct_does() {
        let mut inside = Inside::default();
        inside.push("/k", "secret".into(), Some(parse_perms("0600").unwrap()));
        assert_eq!(
            (inside.mode("/k"), inside.written_with["/k"]),
            (Some(0o600), 0o600)
        );
        // Without --perms: a new file gets the default, an existing one keeps its mode.
        inside.push("/k", "again".into(), None);
        assert_eq!(inside.mode("/k"), Some(0o600));
        inside.push("/n", "x".into(), None);
        assert_eq!(inside.mode("/n"), Some(DEFAULT_MODE));
        // pct reads perms as octal by default, 0x for hex, and refuses anything else.
        assert_eq!(parse_perms("600"), Ok(0o600));
        assert_eq!(parse_perms("0x1a4"), Ok(0o644));
        assert!(parse_perms("rw").is_err() && parse_perms("").is_err());
    }

    #[test]
    fn content_written_before_a_chmod_is_recorded_as_written_readable() {
        let mut inside = Inside::default();
        inside.write("/k", "secret".into(), DEFAULT_MODE);
        assert_eq!(run(&mut inside, &["chmod", "0600", "/k"]).0, 0);
        assert_eq!(
            (inside.mode("/k"), inside.written_with["/k"]),
            (Some(0o600), 0o644)
        );
        // Made empty with its mode first, written, renamed: never readable by others.
        assert_eq!(
            run(
                &mut inside,
                &["install", "-m", "0600", "/dev/null", "/k.new"]
            )
            .0,
            0
        );
        inside.write("/k.new", "secret".into(), DEFAULT_MODE);
        assert_eq!(run(&mut inside, &["mv", "-f", "/k.new", "/k"]).0, 0);
        assert_eq!(
            (inside.mode("/k"), inside.written_with["/k"]),
            (Some(0o600), 0o600)
        );
        assert_eq!(inside.files["/k"], "secret");
        assert!(!inside.files.contains_key("/k.new"));
        assert_eq!(run(&mut inside, &["mv", "/gone", "/k"]).0, 1);
        assert_eq!(
            run(&mut inside, &["chmod", "+x", "/k"]).0,
            0,
            "symbolic: no effect"
        );
    }

    #[test]
    fn cat_of_a_missing_file_fails_and_sh_of_a_missing_file_is_refused() {
        let mut inside = Inside::default();
        assert_eq!(run(&mut inside, &["cat", "/nope"]).0, 1);
        assert!(Run::new(&inside, &["sh".into(), "/nope".into()]).is_err());
    }
}
