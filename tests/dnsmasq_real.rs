//! The real dnsmasq (Debian's dnsmasq-base, 2.90) answering from a `--hostsdir` the way
//! Phoenix writes it: one hosts-format file per guest or route, written under a dot name
//! beside it and renamed into place. The facts these tests hold dnsmasq to are in
//! tests/support/DNSMASQ-FACTS.md.

mod support;

use hickory_proto::op::ResponseCode;
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use support::dnsmasq::Dnsmasq;

type Answer = Result<Vec<Ipv4Addr>, ResponseCode>;

const NXDOMAIN: Answer = Err(ResponseCode::NXDomain);

/// The A records `addresses`, as `Dnsmasq::query_a` gives them (sorted).
fn a(addresses: &[&str]) -> Answer {
    let mut all: Vec<Ipv4Addr> = addresses.iter().map(|s| s.parse().unwrap()).collect();
    all.sort();
    Ok(all)
}

/// A dnsmasq with a configuration file and an empty hostsdir of its own.
struct Zone {
    dns: Dnsmasq,
    hosts: PathBuf,
    settled: Cell<u32>,
    _dir: tempfile::TempDir,
}

impl Zone {
    fn start(conf: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        // dnsmasq only watches a hostsdir that exists when it starts (or at a SIGHUP).
        std::fs::create_dir(&hosts).unwrap();
        let conf_file = dir.path().join("dnsmasq.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let hostsdir = format!("--hostsdir={}", hosts.display());
        let dns = Dnsmasq::start(&conf_file, &["--log-queries", &hostsdir]);
        Self {
            dns,
            hosts,
            settled: Cell::new(0),
            _dir: dir,
        }
    }

    /// Phoenix's write: `.NAME.partial`, then a rename to NAME. dnsmasq skips dot files,
    /// so it reads NAME once, whole.
    fn install(&self, name: &str, text: &str) {
        let temp = format!(".{name}.partial");
        self.write(&temp, text);
        self.rename(&temp, name);
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.hosts.join(name), text).unwrap();
    }

    fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.hosts.join(from), self.hosts.join(to)).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.hosts.join(name)).unwrap();
    }

    /// Returns once dnsmasq has handled every earlier change to the hostsdir: it reads
    /// inotify events in order, so when a marker written after them answers, they are
    /// done. (How a test shows that something did *not* change, without a sleep.)
    fn settle(&self) {
        let n = self.settled.get() + 1;
        self.settled.set(n);
        let marker = format!("settle-{n}.test");
        self.install("zz-settle", &format!("127.0.0.1 {marker}\n"));
        self.dns.wait_for_a(&marker, a(&["127.0.0.1"]));
    }
}

const LOCAL: &str = "local=/internal.example/\n";

/// (a), (b), (c), (e): a guest's record file added, changed (address moved, one name
/// dropped), emptied and removed, each answered at once by the same process with no
/// SIGHUP, and nothing of an older version left behind.
#[test]
fn a_record_file_is_added_changed_and_removed_without_sighup() {
    let zone = Zone::start(LOCAL);
    let pid = zone.dns.pid();
    let web = "web.internal.example";
    let db = "db.internal.example";

    zone.install(
        "web",
        "10.0.0.5 web.internal.example\n10.0.0.6 db.internal.example\n",
    );
    zone.dns.wait_for_a(web, a(&["10.0.0.5"]));
    assert_eq!(zone.dns.query_a(db), a(&["10.0.0.6"]));

    zone.install("web", "10.0.0.7 web.internal.example\n");
    zone.dns.wait_for_a(web, a(&["10.0.0.7"]));
    // Dropped with the file's old version, in the same step as the new one was read.
    assert_eq!(zone.dns.query_a(db), NXDOMAIN);

    zone.install("web", "");
    zone.dns.wait_for_a(web, NXDOMAIN);

    zone.install("web", "10.0.0.8 web.internal.example\n");
    zone.dns.wait_for_a(web, a(&["10.0.0.8"]));
    zone.remove("web");
    zone.dns.wait_for_a(web, NXDOMAIN);

    assert_eq!(zone.dns.pid(), pid, "no restart");
}

/// Why the temp file's name must start with a dot: dnsmasq reads a visible
/// `NAME.partial` as a hosts file of its own (when it looks before the rename), and its
/// records outlive the rename and the removal of NAME. SIGHUP (not a restart) clears
/// them and re-reads what is there.
#[test]
fn a_visible_temp_file_leaves_records_that_only_sighup_clears() {
    let zone = Zone::start(LOCAL);
    let pid = zone.dns.pid();
    let web = "web.internal.example";
    zone.install("db", "10.0.0.6 db.internal.example\n");
    // Whether dnsmasq reads the temp file depends on whether it gets to it before the
    // rename; the settle makes it do so, as any delay between write and rename would.
    zone.write("web.partial", "10.0.0.5 web.internal.example\n");
    zone.settle();
    zone.rename("web.partial", "web");
    zone.dns.wait_for_a(web, a(&["10.0.0.5"]));

    zone.remove("web");
    zone.settle();
    assert_eq!(
        zone.dns.query_a(web),
        a(&["10.0.0.5"]),
        "stale, from web.partial"
    );

    zone.dns.reload();
    zone.dns.wait_for_a(web, NXDOMAIN);
    assert_eq!(zone.dns.query_a("db.internal.example"), a(&["10.0.0.6"]));
    assert_eq!(zone.dns.pid(), pid, "SIGHUP is not a restart");
}

/// dnsmasq keeps one copy of a line found in two files, under the file read first:
/// removing that file loses the name although the other still lists it, until SIGHUP.
/// So Phoenix writes each name into exactly one file.
#[test]
fn the_same_record_in_two_files_goes_with_the_first() {
    let zone = Zone::start(LOCAL);
    let name = "shared.internal.example";
    zone.install("first", "10.0.0.40 shared.internal.example\n");
    zone.dns.wait_for_a(name, a(&["10.0.0.40"]));
    zone.install("second", "10.0.0.40 shared.internal.example\n");
    zone.settle();

    zone.remove("first");
    zone.dns.wait_for_a(name, NXDOMAIN);

    zone.dns.reload();
    zone.dns.wait_for_a(name, a(&["10.0.0.40"]));
}

/// (f): a record in the hostsdir wins over an `address=` wildcard for its own name only;
/// every other name under the wildcard, at any depth, gets the wildcard's address, and
/// removing the record hands its name back to the wildcard.
#[test]
fn a_specific_record_beats_the_wildcard() {
    let zone = Zone::start(&format!(
        "{LOCAL}address=/apps.internal.example/10.0.0.12\n"
    ));
    let grafana = "grafana.apps.internal.example";
    zone.install("route-grafana", "10.0.0.20 grafana.apps.internal.example\n");
    zone.dns.wait_for_a(grafana, a(&["10.0.0.20"]));

    let wildcard = a(&["10.0.0.12"]);
    for name in [
        "other.apps.internal.example",
        "deep.other.apps.internal.example",
        "apps.internal.example",
    ] {
        assert_eq!(zone.dns.query_a(name), wildcard, "{name}");
    }
    assert_eq!(zone.dns.query_a("vm.internal.example"), NXDOMAIN);

    zone.remove("route-grafana");
    zone.dns.wait_for_a(grafana, wildcard);
}

/// (f): under `local=` a name no file holds is NXDOMAIN, answered at once (not
/// forwarded); a name outside every local domain is REFUSED, there being no upstream.
#[test]
fn an_unknown_name_under_local_is_nxdomain() {
    let zone = Zone::start(LOCAL);
    assert_eq!(zone.dns.query_a("nobody.internal.example"), NXDOMAIN);
    assert_eq!(zone.dns.query_a("internal.example"), NXDOMAIN);
    assert_eq!(zone.dns.query_a("example.org"), Err(ResponseCode::Refused));
}

/// (g): a fully qualified name in the hosts line is answered as written, with neither
/// `domain=` nor `expand-hosts`; a bare name gets the domain only with both.
#[test]
fn fqdn_lines_need_neither_domain_nor_expand_hosts() {
    let lines = "10.0.0.30 web\n10.0.0.31 db.internal.example\n";
    let plain = Zone::start(LOCAL);
    plain.install("guests", lines);
    plain
        .dns
        .wait_for_a("db.internal.example", a(&["10.0.0.31"]));
    assert_eq!(plain.dns.query_a("web.internal.example"), NXDOMAIN);

    let expanded = Zone::start(&format!("{LOCAL}domain=internal.example\nexpand-hosts\n"));
    expanded.install("guests", lines);
    expanded
        .dns
        .wait_for_a("db.internal.example", a(&["10.0.0.31"]));
    assert_eq!(
        expanded.dns.query_a("web.internal.example"),
        a(&["10.0.0.30"])
    );
}

/// The harness alone decides where dnsmasq listens: a configuration that names a port
/// or an interface is refused before dnsmasq runs.
#[test]
#[should_panic(expected = "the dnsmasq harness decides where dnsmasq listens")]
fn the_harness_refuses_a_configuration_that_listens_elsewhere() {
    Zone::start(&format!("{LOCAL}port=53\n"));
}
