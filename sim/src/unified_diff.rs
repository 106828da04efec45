//! `diff -b -N -u OLD NEW` as PVE runs it to show pending changes to a file
//! (pve-common `INotify.pm` `ccache_compute_diff`): GNU's unified format, three lines of
//! context, whitespace changes ignored, timestamps in UTC.

/// One file: its path, modification time (seconds) and text.
pub type File<'a> = (&'a str, u64, &'a str);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Same(usize, usize),
    Gone(usize),
    Added(usize),
}

const CONTEXT: usize = 3;

/// The diff, or `None` when the files do not differ (beyond whitespace).
pub fn diff(old: File, new: File) -> Option<String> {
    let a: Vec<&str> = old.2.lines().collect();
    let b: Vec<&str> = new.2.lines().collect();
    let ops = script(&a, &b);
    if ops.iter().all(|op| matches!(op, Op::Same(..))) {
        return None;
    }
    let mut out = format!(
        "--- {}\t{}\n+++ {}\t{}\n",
        old.0,
        timestamp(old.1),
        new.0,
        timestamp(new.1)
    );
    for hunk in hunks(&ops) {
        out.push_str(&render(&ops[hunk.0..hunk.1], &a, &b));
    }
    Some(out)
}

/// What `-b` compares: runs of blanks as one, trailing blanks dropped.
fn squeezed(line: &str) -> String {
    let lead = if line.starts_with(char::is_whitespace) {
        " "
    } else {
        ""
    };
    lead.to_owned() + &line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The edit script from a longest common subsequence of lines.
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (a2, b2): (Vec<String>, Vec<String>) = (
        a.iter().map(|l| squeezed(l)).collect(),
        b.iter().map(|l| squeezed(l)).collect(),
    );
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = match a2[i] == b2[j] {
                true => lcs[i + 1][j + 1] + 1,
                false => lcs[i + 1][j].max(lcs[i][j + 1]),
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a2[i] == b2[j] {
            ops.push(Op::Same(i, j));
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j]) {
            ops.push(Op::Added(j));
            j += 1;
        } else {
            ops.push(Op::Gone(i));
            i += 1;
        }
    }
    ops
}

/// The ranges of the script that make hunks: each change with its context, changes
/// closer than twice the context in one hunk.
fn hunks(ops: &[Op]) -> Vec<(usize, usize)> {
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&k| !matches!(ops[k], Op::Same(..)))
        .collect();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for k in changed {
        let (start, end) = (k.saturating_sub(CONTEXT), (k + 1 + CONTEXT).min(ops.len()));
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

/// `@@ -l,s +l,s @@` and the hunk's lines.
fn render(ops: &[Op], a: &[&str], b: &[&str]) -> String {
    // The line numbers where each side's part of the hunk starts.
    let (mut first_a, mut first_b) = (None, None);
    let (mut count_a, mut count_b) = (0, 0);
    let mut before_a = 0;
    let mut before_b = 0;
    let mut body = String::new();
    for op in ops {
        match *op {
            Op::Same(i, j) => {
                first_a.get_or_insert(i);
                first_b.get_or_insert(j);
                (count_a, count_b) = (count_a + 1, count_b + 1);
                body.push_str(&format!(" {}\n", a[i]));
            }
            Op::Gone(i) => {
                first_a.get_or_insert(i);
                count_a += 1;
                body.push_str(&format!("-{}\n", a[i]));
            }
            Op::Added(j) => {
                first_b.get_or_insert(j);
                count_b += 1;
                body.push_str(&format!("+{}\n", b[j]));
            }
        }
        if first_a.is_none() {
            before_a = position_a(op);
        }
        if first_b.is_none() {
            before_b = position_b(op);
        }
    }
    format!(
        "@@ -{} +{} @@\n{body}",
        range(first_a, count_a, before_a),
        range(first_b, count_b, before_b)
    )
}

fn position_a(op: &Op) -> usize {
    match *op {
        Op::Same(i, _) | Op::Gone(i) => i + 1,
        Op::Added(_) => 0,
    }
}

fn position_b(op: &Op) -> usize {
    match *op {
        Op::Same(_, j) | Op::Added(j) => j + 1,
        Op::Gone(_) => 0,
    }
}

/// GNU's range: `start,count`, `start` alone for one line, the line before for none.
fn range(first: Option<usize>, count: usize, before: usize) -> String {
    match (first, count) {
        (Some(first), 1) => format!("{}", first + 1),
        (Some(first), n) => format!("{},{n}", first + 1),
        (None, _) => format!("{before},0"),
    }
}

/// `2026-01-02 03:04:05.000000000 +0000`.
fn timestamp(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000000 +0000",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diffs_are_gnus() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
        let text = diff(("/x", 0, old), ("/x.new", 86_400 + 61, new)).unwrap();
        assert_eq!(
            text,
            "--- /x\t1970-01-01 00:00:00.000000000 +0000\n\
             +++ /x.new\t1970-01-02 00:01:01.000000000 +0000\n\
             @@ -1,10 +1,11 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n j\n+k\n"
        );
        // Far apart, two hunks; an insertion at the top counts from line 0.
        let long: String = (0..20).map(|i| format!("{i}\n")).collect();
        let changed = format!("top\n{long}end\n");
        let text = diff(("/x", 0, &long), ("/x", 0, &changed)).unwrap();
        assert!(
            text.contains("@@ -1,3 +1,4 @@\n+top\n 0\n 1\n 2\n@@"),
            "{text}"
        );
        assert!(
            text.ends_with("@@ -18,3 +19,4 @@\n 17\n 18\n 19\n+end\n"),
            "{text}"
        );
        // Into an empty file (`-N`): the side without lines counts from 0.
        let text = diff(("/x", 0, ""), ("/x", 0, "a\n")).unwrap();
        assert!(text.ends_with("@@ -0,0 +1 @@\n+a\n"), "{text}");
        // Whitespace alone is no change (-b).
        assert_eq!(diff(("/x", 0, "a  b\n"), ("/x", 0, "a b \n")), None);
    }
}
