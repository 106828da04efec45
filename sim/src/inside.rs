//! The simulated inside of a guest or of a PVE node: what `pct exec` / `pct push`, the
//! QEMU agent and SSH to a node act on.
//!
//! An inside keeps a file map (with each file's mode, and the mode it had when its content
//! was written), a command log and service states. Commands are interpreted, one line at
//! a time, by a deliberately small shell: the forms Phoenix's feature scripts, checks and
//! host setup use (`echo … > FILE`, `cat FILE`, the marker guard, `install`/`cp`/`mv`,
//! `chmod`, `rm [-f]`, `mkdir -p`, `systemctl`, `sha256sum`, `dnsmasq --test`, `curl`,
//! `exit`) have effects, and on a node its own commands (`zfs`, `zpool`, `exportfs`: a
//! [`Host`], [`crate::node_shell`]); any other line succeeds silently. Words with `*` or
//! `?` in their last path component are expanded against the files, `2>/dev/null` drops
//! a command's error lines and `… || true` forgives its failure. Scripted answers (`PUT
//! /admin/guests/{vmid}/answers`, `PUT /admin/nodes/{node}/answers`) make a line fail,
//! print, or take time, so failures and crashes mid-script can be tested. A run is a
//! sequence of steps; the caller drives it and may sleep between steps without holding
//! the simulator's lock.

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

/// Files, command log, services and scripted answers of one guest or node.
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
    /// systemd units enabled at boot (`systemctl enable`), apart from their state.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub enabled: std::collections::BTreeSet<String>,
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
        self.step_on(inside, &mut (), now_ms)
    }

    /// As [`Run::step`], with the commands of a host beyond the small shell (a PVE
    /// node's ZFS and NFS exports).
    pub fn step_on(&mut self, inside: &mut Inside, host: &mut dyn Host, now_ms: u64) -> Step {
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
        let (command, forgive) = forgiven(&line);
        let outcome = match &answer {
            Some(a) if a.exit.is_some() || a.output.is_some() => Outcome {
                exit: a.exit.unwrap_or(0),
                out: a.output.clone().unwrap_or_default(),
                err: String::new(),
            },
            _ => effect(inside, host, command),
        };
        let exit = match outcome.exit {
            code if forgive && code != EXIT_NOW => 0,
            code => code,
        };
        let printed = outcome.printed();
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

/// `COMMAND || true`: the command, and whether its failure is forgiven.
fn forgiven(line: &str) -> (&str, bool) {
    match line.strip_suffix("|| true") {
        Some(command) => (command.trim_end(), true),
        None => (line, false),
    }
}

/// Commands that act on more than the files of an inside: a PVE node's pools, datasets
/// and NFS exports. `None` when the words are not the host's own command.
pub trait Host {
    fn command(&mut self, inside: &Inside, words: &[&str]) -> Option<Outcome>;
}

/// A guest: nothing beyond the small shell.
impl Host for () {
    fn command(&mut self, _: &Inside, _: &[&str]) -> Option<Outcome> {
        None
    }
}

/// What one line did: its exit code and what it printed on stdout and on stderr.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub exit: i32,
    pub out: String,
    pub err: String,
}

impl Outcome {
    pub fn done() -> Self {
        Self::default()
    }

    pub fn printing(out: impl Into<String>) -> Self {
        Self {
            out: out.into(),
            ..Self::default()
        }
    }

    pub fn failed(exit: i32, err: impl Into<String>) -> Self {
        Self {
            exit,
            err: err.into(),
            ..Self::default()
        }
    }

    /// Both streams as one captured output. Errors come first: stderr is unbuffered,
    /// while a stdout going into a pipe is flushed when the command exits.
    fn printed(self) -> String {
        self.err + &self.out
    }
}

/// The effect of one line: the marker guard, or a command after expansion and redirection.
fn effect(inside: &mut Inside, host: &mut dyn Host, line: &str) -> Outcome {
    if let Some((file, expected)) = marker_guard(line) {
        let done = inside.files.get(file).is_some_and(|c| c.trim() == expected);
        return Outcome {
            exit: if done { EXIT_NOW } else { 0 },
            ..Outcome::default()
        };
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let quiet = words.contains(&"2>/dev/null");
    let words: Vec<String> = words
        .into_iter()
        .filter(|w| *w != "2>/dev/null")
        .flat_map(|w| glob(inside, w))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut outcome = host
        .command(inside, &words)
        .unwrap_or_else(|| command(inside, &words));
    if quiet {
        outcome.err.clear();
    }
    outcome
}

/// A word with `*` or `?` in its last path component: the names in its directory it
/// matches, sorted, dot names only when the pattern starts with a dot (as a POSIX shell
/// expands it); without a match the word stays as it is. A directory is a name some
/// file's path runs through.
fn glob(inside: &Inside, word: &str) -> Vec<String> {
    let (prefix, pattern) = match word.rsplit_once('/') {
        Some((dir, pattern)) => (format!("{dir}/"), pattern),
        None => (String::new(), word),
    };
    if !pattern.contains(['*', '?']) || prefix.contains(['*', '?']) {
        return vec![word.to_owned()];
    }
    let pattern_chars: Vec<char> = pattern.chars().collect();
    let names: std::collections::BTreeSet<&str> = inside
        .files
        .keys()
        .filter_map(|path| path.strip_prefix(&prefix)?.split('/').next())
        .filter(|name| !name.starts_with('.') || pattern.starts_with('.'))
        .filter(|name| wildcard(&pattern_chars, name))
        .collect();
    if names.is_empty() {
        return vec![word.to_owned()];
    }
    names.iter().map(|name| format!("{prefix}{name}")).collect()
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` one.
fn wildcard(pattern: &[char], name: &str) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => {
            wildcard(rest, name)
                || name
                    .chars()
                    .next()
                    .is_some_and(|c| wildcard(pattern, &name[c.len_utf8()..]))
        }
        Some((p, rest)) => match name.chars().next() {
            Some(c) if *p == '?' || *p == c => wildcard(rest, &name[c.len_utf8()..]),
            _ => false,
        },
    }
}

/// One command, its words expanded.
fn command(inside: &mut Inside, words: &[&str]) -> Outcome {
    match words {
        ["exit", code] => match code.parse::<i32>() {
            Ok(0) => Outcome {
                exit: EXIT_NOW,
                ..Outcome::default()
            },
            Ok(code) => Outcome {
                exit: code,
                ..Outcome::default()
            },
            Err(_) => Outcome::failed(2, format!("exit: Illegal number: {code}\n")),
        },
        ["echo", rest @ ..] => match rest.iter().position(|w| *w == ">") {
            Some(at) if at + 1 < rest.len() => {
                let text = unquote(&rest[..at].join(" "));
                inside.write(rest[at + 1], format!("{text}\n"), DEFAULT_MODE);
                Outcome::done()
            }
            _ => Outcome::printing(format!("{}\n", unquote(&rest.join(" ")))),
        },
        ["cat", file, ..] => match inside.files.get(*file) {
            Some(content) => Outcome::printing(content.clone()),
            None => Outcome::failed(1, format!("cat: {file}: No such file or directory\n")),
        },
        ["install", args @ .., src, dst] => install(inside, args, src, dst),
        ["cp", .., src, dst] => match read(inside, src) {
            Some(content) => {
                let mode = inside.mode(src).unwrap_or(DEFAULT_MODE);
                inside.write(dst, content, mode);
                Outcome::done()
            }
            None => Outcome::failed(
                1,
                format!("cp: cannot stat '{src}': No such file or directory\n"),
            ),
        },
        ["mv", .., src, dst] => rename(inside, src, dst),
        // A numeric mode is kept; symbolic ones (`+x`) are taken without effect.
        ["chmod", mode, file] if mode.bytes().all(|b| b.is_ascii_digit()) => {
            match (parse_perms(mode), inside.files.contains_key(*file)) {
                (Ok(mode), true) => {
                    inside.modes.insert((*file).to_owned(), mode);
                    Outcome::done()
                }
                (Err(_), _) => Outcome::failed(1, format!("chmod: invalid mode: '{mode}'\n")),
                (_, false) => Outcome::failed(
                    1,
                    format!("chmod: cannot access '{file}': No such file or directory\n"),
                ),
            }
        }
        // Every operand goes, present or not (a glob may have named several).
        ["rm", "-f", files @ ..] => {
            for file in files {
                inside.remove(file);
            }
            Outcome::done()
        }
        ["rm", .., file] => {
            inside.remove(file);
            Outcome::done()
        }
        // Directories are implied by the files' paths: there is nothing to make.
        ["mkdir", ..] => Outcome::done(),
        ["sha256sum", files @ ..] => sha256sum(inside, files),
        ["dnsmasq", args @ ..] if args.contains(&"--test") => dnsmasq_test(inside, args),
        ["systemctl", verb, rest @ ..] => systemctl(inside, verb, rest),
        // The simulated guest's services answer: checks see HTTP 200 unless an answer
        // says otherwise.
        ["curl", ..] => Outcome::printing("200"),
        _ => Outcome::done(),
    }
}

// GNU install replaces the destination with a new file created 0600, copies into it and
// then gives it its mode (0755 without `-m`).
fn install(inside: &mut Inside, args: &[&str], src: &str, dst: &str) -> Outcome {
    let Some(content) = read(inside, src) else {
        return Outcome::failed(
            1,
            format!("install: cannot stat '{src}': No such file or directory\n"),
        );
    };
    let mode = match args.iter().position(|a| *a == "-m") {
        Some(at) => match args.get(at + 1).map(|m| parse_perms(m)) {
            Some(Ok(mode)) => mode,
            _ => return Outcome::failed(1, "install: invalid mode\n"),
        },
        None => 0o755,
    };
    inside.remove(dst);
    inside.write(dst, content, 0o600);
    inside.modes.insert(dst.to_owned(), mode);
    Outcome::done()
}

/// `mv`, a rename: the file keeps its content, its mode and how it was written.
fn rename(inside: &mut Inside, src: &str, dst: &str) -> Outcome {
    let Some((content, mode, written_with)) = inside.remove(src) else {
        return Outcome::failed(
            1,
            format!("mv: cannot stat '{src}': No such file or directory\n"),
        );
    };
    inside.remove(dst);
    inside.files.insert(dst.to_owned(), content);
    inside.modes.insert(dst.to_owned(), mode);
    if let Some(w) = written_with {
        inside.written_with.insert(dst.to_owned(), w);
    }
    Outcome::done()
}

/// GNU `sha256sum FILE…`: `HASH  PATH` per file (two spaces: text mode), an error line
/// per file it cannot read, exit 1 if there was any; no operand is an empty stdin.
fn sha256sum(inside: &Inside, files: &[&str]) -> Outcome {
    if files.is_empty() {
        return Outcome::printing(format!("{}  -\n", crate::access::sha256_hex("")));
    }
    let mut outcome = Outcome::done();
    for file in files {
        match inside.files.get(*file) {
            Some(content) => {
                let line = format!("{}  {file}\n", crate::access::sha256_hex(content));
                outcome.out.push_str(&line);
            }
            None => {
                let why = if is_dir(inside, file) {
                    "Is a directory"
                } else {
                    "No such file or directory"
                };
                outcome.err.push_str(&format!("sha256sum: {file}: {why}\n"));
                outcome.exit = 1;
            }
        }
    }
    outcome
}

/// Whether some file's path runs through `path`.
fn is_dir(inside: &Inside, path: &str) -> bool {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    inside.files.keys().any(|f| f.starts_with(&prefix))
}

/// `dnsmasq --test [--conf-file=FILE]`: the syntax is taken as good (a scripted answer
/// makes it bad); a named file that does not exist fails as dnsmasq 2.90 does. dnsmasq
/// writes both on stderr.
fn dnsmasq_test(inside: &Inside, args: &[&str]) -> Outcome {
    let missing = args
        .iter()
        .filter_map(|a| a.strip_prefix("--conf-file="))
        .find(|file| !inside.files.contains_key(*file));
    match missing {
        Some(file) => Outcome::failed(
            3,
            format!("dnsmasq: cannot read {file}: No such file or directory\n"),
        ),
        None => Outcome {
            err: "dnsmasq: syntax check OK.\n".into(),
            ..Outcome::default()
        },
    }
}

/// A query about units: a line per unit, success when every unit is as asked, else `fail`.
fn each_unit(units: &[String], state: impl Fn(&str) -> (&'static str, bool), fail: i32) -> Outcome {
    let mut outcome = Outcome::done();
    for unit in units {
        let (word, yes) = state(unit);
        outcome.out.push_str(word);
        outcome.out.push('\n');
        if !yes {
            outcome.exit = fail;
        }
    }
    outcome
}

/// `systemctl VERB UNIT…`: a unit's state (`running`, `stopped`) and whether it is
/// enabled are apart, as in systemd: `enable` alone starts nothing.
fn systemctl(inside: &mut Inside, verb: &str, rest: &[&str]) -> Outcome {
    let units: Vec<String> = rest
        .iter()
        .filter(|w| !w.starts_with('-'))
        .map(|u| (*u).to_owned())
        .collect();
    let now = rest.contains(&"--now");
    match verb {
        "is-active" => {
            return each_unit(
                &units,
                |u| match inside.services.get(u) {
                    Some(state) if state == "running" => ("active", true),
                    _ => ("inactive", false),
                },
                3,
            );
        }
        "is-enabled" => {
            return each_unit(
                &units,
                |u| match inside.enabled.contains(u) {
                    true => ("enabled", true),
                    false => ("disabled", false),
                },
                1,
            );
        }
        "enable" => inside.enabled.extend(units.iter().cloned()),
        "disable" => inside.enabled.retain(|u| !units.contains(u)),
        _ => {}
    }
    let state = match verb {
        "start" | "restart" | "reload-or-restart" => "running",
        "enable" if now => "running",
        "stop" => "stopped",
        "disable" if now => "stopped",
        _ => return Outcome::done(),
    };
    for unit in units {
        inside.services.insert(unit, state.into());
    }
    Outcome::done()
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

    /// The SHA-256 of `abc`, as `sha256sum` prints it.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn node() -> Inside {
        let mut inside = Inside::default();
        for path in [
            "/etc/dnsmasq.d/phoenix.conf",
            "/etc/phoenix/dnsmasq/hosts/lxcguest.default.web",
            "/etc/phoenix/dnsmasq/hosts/lxcguest.default.db",
            "/etc/phoenix/dnsmasq/hosts/.lxcguest.default.new.partial",
        ] {
            inside.write(path, "abc".into(), 0o600);
        }
        inside
    }

    #[test]
    fn sha256sum_expands_a_glob_sorted_without_dot_files_and_hashes_as_gnu_does() {
        let mut inside = node();
        let (code, output) = run(
            &mut inside,
            &[
                "sh",
                "-c",
                "sha256sum /etc/dnsmasq.d/phoenix.conf /etc/phoenix/dnsmasq/hosts/*",
            ],
        );
        assert_eq!(code, 0);
        assert_eq!(
            output,
            format!(
                "{ABC}  /etc/dnsmasq.d/phoenix.conf\n\
                 {ABC}  /etc/phoenix/dnsmasq/hosts/lxcguest.default.db\n\
                 {ABC}  /etc/phoenix/dnsmasq/hosts/lxcguest.default.web\n"
            )
        );
        // An explicit dot matches dot files; `?` is one character.
        let (_, dots) = run(&mut inside, &["sha256sum", "/etc/phoenix/dnsmasq/hosts/.*"]);
        assert!(dots.ends_with("  /etc/phoenix/dnsmasq/hosts/.lxcguest.default.new.partial\n"));
        let (_, one) = run(&mut inside, &["sha256sum", "/etc/dnsmasq.d/phoenix.con?"]);
        assert_eq!(one, format!("{ABC}  /etc/dnsmasq.d/phoenix.conf\n"));
        // A directory a glob names is one too.
        let (code, dirs) = run(&mut inside, &["sha256sum", "/etc/phoenix/*"]);
        assert_eq!(
            (code, dirs.as_str()),
            (1, "sha256sum: /etc/phoenix/dnsmasq: Is a directory\n")
        );
    }

    #[test]
    fn sha256sum_of_missing_files_fails_unless_errors_are_dropped_and_failure_forgiven() {
        let mut inside = node();
        inside.services.insert("dnsmasq".into(), "running".into());
        // No match: the word stays literal, and is a missing file.
        let (code, output) = run(&mut inside, &["sha256sum", "/etc/nothing/*"]);
        assert_eq!(
            (code, output.as_str()),
            (1, "sha256sum: /etc/nothing/*: No such file or directory\n")
        );
        let (code, output) = run(
            &mut inside,
            &["sha256sum", "/gone", "/etc/dnsmasq.d/phoenix.conf"],
        );
        assert_eq!(code, 1);
        assert_eq!(
            output,
            format!(
                "sha256sum: /gone: No such file or directory\n{ABC}  /etc/dnsmasq.d/phoenix.conf\n"
            )
        );
        // Phoenix's probe of the host: both lines run, the run succeeds.
        let probe =
            "sha256sum /gone /etc/empty/* 2>/dev/null || true\nsystemctl is-active dnsmasq || true";
        assert_eq!(
            run(&mut inside, &["sh", "-c", probe]),
            (0, "active\n".into())
        );
        inside.services.clear();
        assert_eq!(
            run(&mut inside, &["sh", "-c", probe]),
            (0, "inactive\n".into())
        );
        let codes: Vec<Option<i32>> = inside.log.iter().rev().take(2).map(|r| r.exit).collect();
        assert_eq!(codes, [Some(0), Some(0)], "forgiven lines exit 0");
        // Without `|| true` the failure ends the run.
        let (code, _) = run(
            &mut inside,
            &["sh", "-c", "sha256sum /gone 2>/dev/null\necho no > /after"],
        );
        assert_eq!(code, 1);
        assert!(!inside.files.contains_key("/after"));
    }

    #[test]
    fn host_setup_commands_mkdir_rm_f_dnsmasq_test_and_systemctl_enable() {
        let mut inside = node();
        let hosts = "/etc/phoenix/dnsmasq/hosts";
        assert_eq!(run(&mut inside, &["mkdir", "-p", hosts]).0, 0);
        let web = format!("{hosts}/lxcguest.default.web");
        assert_eq!(run(&mut inside, &["rm", "-f", &web]), (0, String::new()));
        assert_eq!(
            run(&mut inside, &["rm", "-f", &web]),
            (0, String::new()),
            "gone already"
        );
        assert!(!inside.files.contains_key(&web));
        assert_eq!(
            run(&mut inside, &["sh", "-c", &format!("rm -f {hosts}/*")]).0,
            0
        );
        assert!(
            !inside
                .files
                .contains_key(&format!("{hosts}/lxcguest.default.db"))
        );
        assert!(
            inside
                .files
                .contains_key(&format!("{hosts}/.lxcguest.default.new.partial")),
            "a glob leaves dot files alone"
        );
        let conf = "--conf-file=/etc/dnsmasq.d/phoenix.conf";
        assert_eq!(
            run(&mut inside, &["dnsmasq", "--test", conf]),
            (0, "dnsmasq: syntax check OK.\n".into())
        );
        assert_eq!(
            run(&mut inside, &["dnsmasq", "--test", "--conf-file=/nope"]),
            (
                3,
                "dnsmasq: cannot read /nope: No such file or directory\n".into()
            )
        );
        inside.answers.push(Answer {
            matches: "dnsmasq --test".into(),
            exit: Some(1),
            output: Some("dnsmasq: bad option at line 1 of /etc/dnsmasq.d/phoenix.conf\n".into()),
            ..Answer::default()
        });
        assert_eq!(run(&mut inside, &["dnsmasq", "--test", conf]).0, 1);
        assert_eq!(run(&mut inside, &["systemctl", "enable", "dnsmasq"]).0, 0);
        assert!(inside.enabled.contains("dnsmasq") && !inside.services.contains_key("dnsmasq"));
        assert_eq!(
            run(&mut inside, &["systemctl", "is-active", "dnsmasq"]).0,
            3
        );
        assert_eq!(
            run(&mut inside, &["systemctl", "is-enabled", "dnsmasq"]),
            (0, "enabled\n".into())
        );
        assert_eq!(run(&mut inside, &["systemctl", "restart", "dnsmasq"]).0, 0);
        assert_eq!(inside.services["dnsmasq"], "running");
    }
}
