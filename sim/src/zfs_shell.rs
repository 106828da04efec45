//! `zfs list|create|set` and `zpool list` in a node's shell, answered from the node's
//! [`Zfs`] state with OpenZFS's output and messages.

use crate::inside::Outcome;
use crate::zfs::{Zfs, check_property, is_column, nicenum, parent};

/// Flags (`-Hp`, `-o LIST`, `-t TYPE`) and operands of a command line, as getopt splits
/// them; `with_value` are the flags that take an argument.
struct Args<'a> {
    flags: Vec<char>,
    values: Vec<(char, &'a str)>,
    operands: Vec<&'a str>,
}

fn getopt<'a>(args: &[&'a str], with_value: &str) -> Result<Args<'a>, char> {
    let mut parsed = Args {
        flags: Vec::new(),
        values: Vec::new(),
        operands: Vec::new(),
    };
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) else {
            parsed.operands.push(word);
            continue;
        };
        for (i, flag) in cluster.char_indices() {
            if !with_value.contains(flag) {
                parsed.flags.push(flag);
                continue;
            }
            let rest = &cluster[i + flag.len_utf8()..];
            let value = match rest.is_empty() {
                true => *words.next().ok_or(flag)?,
                false => rest,
            };
            parsed.values.push((flag, value));
            break;
        }
    }
    Ok(parsed)
}

impl Args<'_> {
    fn has(&self, flag: char) -> bool {
        self.flags.contains(&flag)
    }

    fn value(&self, flag: char) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| *v)
    }
}

/// `zfs SUBCOMMAND …`.
pub fn zfs(state: &mut Zfs, args: &[&str]) -> Outcome {
    match args {
        ["list", rest @ ..] => list(state, rest),
        ["create", rest @ ..] => create(state, rest),
        ["set", rest @ ..] => set(state, rest),
        [sub, ..] => Outcome::failed(2, format!("unrecognized command '{sub}'\n")),
        [] => Outcome::failed(2, "missing command\n"),
    }
}

/// Rows as `zfs list`/`zpool list` print them: tab-separated with `-H`, else under an
/// upper-case header in columns two spaces apart.
fn table(columns: &[&str], rows: Vec<Vec<String>>, scripted: bool) -> String {
    if scripted {
        return rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect();
    }
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows.iter()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    all.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// `zfs list [-H] [-p] [-r] [-o PROPS] [-t TYPES] [NAME…]`: filesystems only (there are
/// no volumes or snapshots here), sorted by name.
fn list(state: &Zfs, args: &[&str]) -> Outcome {
    let Ok(args) = getopt(args, "otdsS") else {
        return Outcome::failed(2, "missing argument for option\n");
    };
    let columns: Vec<&str> = args
        .value('o')
        .unwrap_or("name,used,avail,refer,mountpoint")
        .split(',')
        .collect();
    if let Some(bad) = columns.iter().find(|c| !is_column(c)) {
        return Outcome::failed(2, format!("bad property list: invalid property '{bad}'\n"));
    }
    let types = args.value('t').unwrap_or("filesystem");
    let filesystems = types.split(',').any(|t| matches!(t, "filesystem" | "all"));
    let mut outcome = Outcome::done();
    let mut names: Vec<&String> = Vec::new();
    for operand in &args.operands {
        if !state.datasets.contains_key(*operand) {
            outcome.exit = 1;
            outcome.err += &format!("cannot open '{operand}': dataset does not exist\n");
            continue;
        }
        let below = format!("{operand}/");
        names.extend(
            state
                .datasets
                .keys()
                .filter(|n| n.as_str() == *operand || (args.has('r') && n.starts_with(&below))),
        );
    }
    if args.operands.is_empty() {
        names = state.datasets.keys().collect();
    }
    names.sort();
    names.dedup();
    let rows: Vec<Vec<String>> = names
        .into_iter()
        .filter(|_| filesystems)
        .map(|name| {
            columns
                .iter()
                .map(|c| match args.has('p') {
                    true => state.value(name, c),
                    false => state.display(name, c),
                })
                .collect()
        })
        .collect();
    if !rows.is_empty() {
        outcome.out = table(&columns, rows, args.has('H'));
    }
    outcome
}

/// `-o prop=value` options and the checks `zfs create` and `zfs set` share: the
/// properties as stored, or the message after `cannot … 'NAME': `.
fn properties<'a>(pairs: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, String> {
    pairs
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => check_property(name, value),
            None => Err(format!("missing '=' for property '{pair}'")),
        })
        .collect()
}

/// A dataset name's characters: letters, digits, `_-.:` and `/` between components.
fn bad_character(name: &str) -> Option<char> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-.:/".contains(*c)))
}

/// `zfs create [-p] [-o prop=value]… NAME`.
fn create(state: &mut Zfs, args: &[&str]) -> Outcome {
    let Ok(args) = getopt(args, "o") else {
        return Outcome::failed(2, "missing argument for 'o' option\n");
    };
    let [name] = args.operands[..] else {
        return Outcome::failed(2, "missing dataset argument\n");
    };
    let fail = |why: String| Outcome::failed(1, format!("cannot create '{name}': {why}\n"));
    let options = args
        .values
        .iter()
        .filter(|(f, _)| *f == 'o')
        .map(|(_, v)| *v);
    let props = match properties(options) {
        Ok(props) => props,
        Err(why) => return fail(why),
    };
    if let Some(c) = bad_character(name) {
        return fail(format!("invalid character '{c}' in name"));
    }
    let Some(parent_name) = parent(name) else {
        return fail("missing dataset name".into());
    };
    let pool = name.split('/').next().unwrap_or_default();
    if !state.pools.contains_key(pool) {
        return fail(format!("no such pool '{pool}'"));
    }
    if state.datasets.contains_key(name) {
        return fail("dataset already exists".into());
    }
    if !state.datasets.contains_key(parent_name) && !args.has('p') {
        return fail("parent does not exist".into());
    }
    // With -p the missing ancestors are made first, with no properties of their own.
    let mut missing = Vec::new();
    let mut at = parent(name);
    while let Some(ancestor) = at.filter(|a| !state.datasets.contains_key(*a)) {
        missing.push(ancestor.to_owned());
        at = parent(ancestor);
    }
    for ancestor in missing {
        state.datasets.insert(ancestor, Default::default());
    }
    state
        .datasets
        .insert(name.to_owned(), props.into_iter().collect());
    Outcome::done()
}

/// `zfs set prop=value… NAME`.
fn set(state: &mut Zfs, args: &[&str]) -> Outcome {
    let [pairs @ .., name] = args else {
        return Outcome::failed(2, "missing property=value argument(s)\n");
    };
    if pairs.is_empty() {
        return Outcome::failed(2, "missing dataset name(s)\n");
    }
    if !state.datasets.contains_key(*name) {
        return Outcome::failed(1, format!("cannot open '{name}': dataset does not exist\n"));
    }
    match properties(pairs.iter().copied()) {
        Ok(props) => {
            state
                .datasets
                .entry((*name).to_owned())
                .or_default()
                .extend(props);
            Outcome::done()
        }
        Err(why) => Outcome::failed(1, format!("cannot set property for '{name}': {why}\n")),
    }
}

/// `zpool list [-H] [-p] [-o PROPS] [POOL…]` (`-P`, `-L`, `-v` accepted as PVE passes
/// them).
pub fn zpool(state: &Zfs, args: &[&str]) -> Outcome {
    let ["list", rest @ ..] = args else {
        return Outcome::failed(2, "unrecognized command\n");
    };
    let Ok(args) = getopt(rest, "oT") else {
        return Outcome::failed(2, "missing argument for option\n");
    };
    let default = "name,size,alloc,free,ckpoint,expandsz,frag,cap,dedup,health,altroot";
    let columns: Vec<&str> = args.value('o').unwrap_or(default).split(',').collect();
    let mut outcome = Outcome::done();
    let mut rows = Vec::new();
    for (name, pool) in &state.pools {
        if !args.operands.is_empty() && !args.operands.contains(&name.as_str()) {
            continue;
        }
        let row: Result<Vec<String>, &str> = columns
            .iter()
            .map(|c| pool_column(name, pool, c, args.has('p')))
            .collect();
        match row {
            Ok(row) => rows.push(row),
            Err(bad) => {
                return Outcome::failed(
                    2,
                    format!("bad property list: invalid property '{bad}'\n"),
                );
            }
        }
    }
    for missing in args
        .operands
        .iter()
        .filter(|p| !state.pools.contains_key(**p))
    {
        outcome.exit = 1;
        outcome.err += &format!("cannot open '{missing}': no such pool\n");
    }
    if !rows.is_empty() {
        outcome.out = table(&columns, rows, args.has('H'));
    }
    outcome
}

fn pool_column<'a>(
    name: &str,
    pool: &crate::zfs::Pool,
    column: &'a str,
    parsable: bool,
) -> Result<String, &'a str> {
    let bytes = |n: u64| if parsable { n.to_string() } else { nicenum(n) };
    let percent = |n: u64| {
        if parsable {
            n.to_string()
        } else {
            format!("{n}%")
        }
    };
    Ok(match column {
        "name" => name.to_owned(),
        "size" => bytes(pool.size),
        "alloc" | "allocated" => bytes(pool.alloc),
        "free" => bytes(pool.size.saturating_sub(pool.alloc)),
        "frag" | "fragmentation" => percent(0),
        "cap" | "capacity" => percent(pool.alloc * 100 / pool.size.max(1)),
        "dedup" | "dedupratio" => if parsable { "1.00" } else { "1.00x" }.into(),
        "health" => pool.health.clone(),
        "ckpoint" | "expandsz" | "altroot" => "-".into(),
        other => return Err(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut Zfs, line: &str) -> Outcome {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "zfs" => zfs(state, &words[1..]),
            _ => zpool(state, &words[1..]),
        }
    }

    #[test]
    fn create_p_makes_the_parents_and_list_shows_inherited_values() {
        let mut state = Zfs::default();
        let made = run(
            &mut state,
            "zfs create -p -o recordsize=1M rpool/data/media/films",
        );
        assert_eq!(made, Outcome::done());
        let listed = run(
            &mut state,
            "zfs list -H -p -o name,compression,recordsize,mountpoint -t filesystem rpool/data -r",
        );
        assert_eq!(
            listed.out,
            "rpool/data\ton\t131072\t/rpool/data\n\
             rpool/data/media\ton\t131072\t/rpool/data/media\n\
             rpool/data/media/films\ton\t1048576\t/rpool/data/media/films\n"
        );
        let human = run(
            &mut state,
            "zfs list -o name,recordsize,quota rpool/data/media/films",
        );
        assert_eq!(
            human.out,
            "NAME                    RECORDSIZE  QUOTA\nrpool/data/media/films  1M          none\n"
        );
    }

    #[test]
    fn create_and_set_fail_as_zfs_does() {
        let mut state = Zfs::default();
        let cases = [
            (
                "zfs create tank/a",
                "cannot create 'tank/a': no such pool 'tank'\n",
            ),
            (
                "zfs create rpool/x/y",
                "cannot create 'rpool/x/y': parent does not exist\n",
            ),
            (
                "zfs create rpool/data",
                "cannot create 'rpool/data': dataset already exists\n",
            ),
            (
                "zfs create -o foo=1 rpool/f",
                "cannot create 'rpool/f': invalid property 'foo'\n",
            ),
            (
                "zfs set recordsize=3k rpool/data",
                "cannot set property for 'rpool/data': 'recordsize' must be power of 2 from 512B to 16M\n",
            ),
            (
                "zfs set atime=off rpool/none",
                "cannot open 'rpool/none': dataset does not exist\n",
            ),
        ];
        for (line, message) in cases {
            assert_eq!(run(&mut state, line), Outcome::failed(1, message), "{line}");
        }
        assert!(!state.datasets.contains_key("rpool/f") && !state.datasets.contains_key("rpool/x"));
        assert_eq!(
            run(&mut state, "zfs set quota=100G xattr=sa rpool/data"),
            Outcome::done()
        );
        assert_eq!(
            state.datasets["rpool/data"]["quota"],
            (100u64 << 30).to_string()
        );
        assert_eq!(state.datasets["rpool/data"]["xattr"], "sa");
    }

    #[test]
    fn list_of_a_missing_dataset_and_zpool_list() {
        let mut state = Zfs::default();
        let listed = run(&mut state, "zfs list -H -o name rpool nope");
        assert_eq!(
            (listed.exit, listed.out.as_str(), listed.err.as_str()),
            (1, "rpool\n", "cannot open 'nope': dataset does not exist\n")
        );
        let pools = run(&mut state, "zpool list -Hp -o name,alloc,health");
        assert_eq!(pools.out, format!("rpool\t{}\tONLINE\n", 4u64 << 30));
    }
}
