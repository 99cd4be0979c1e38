//! The HTTP client of `system.http_request`, and the allowlist that decides where
//! it may go.
//!
//! A rule can put any URL into an action, so the destination is checked
//! twice: the URL's host must be allowed by `http_allow`, and every address
//! it resolves to must be allowed for its kind. The request is then pinned
//! to the checked addresses (no second DNS lookup for a rebinding answer to
//! slip through), follows no redirects and ignores proxy variables.
//!
//! | address | allowed by |
//! |---|---|
//! | public | any entry matching the host (`*` included) |
//! | private or loopback (10/8, 172.16/12, 192.168/16, 100.64/10, 127/8, fc00::/7, ::1) | an entry naming the host, or an address entry covering it (not `*`) |
//! | link-local, cloud metadata, unspecified, multicast, broadcast | only an address entry covering it (`169.254.169.254`) |
//! | a port this daemon listens on | only an address entry with that port (`127.0.0.1:7700`) |
//!
//! Entries: `example.com`, `*.example.com` (subdomains), `*` (any public
//! host), an address `127.0.0.1` or `::1`, a network `10.0.0.0/8`, each
//! optionally with `:port` (IPv6 as `[::1]:8080`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One `http_allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `*`: any public host.
    Any { port: Option<u16> },
    /// A host name; `suffix` for `*.example.com`.
    Host {
        name: String,
        suffix: bool,
        port: Option<u16>,
    },
    /// An address or a network.
    Net {
        addr: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

/// Where `system.http_request` may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

/// What kind of address a request would reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Public,
    Private,
    /// Link-local, metadata, unspecified, multicast, broadcast.
    Special,
    /// A port this daemon listens on.
    Own,
}

fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number"))
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address in brackets needs its `]`".to_owned())?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(port(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected `{after}` after the address")),
        };
    }
    // A bare IPv6 address has several colons and no port.
    if entry.matches(':').count() > 1 {
        return Ok((entry, None));
    }
    match entry.rsplit_once(':') {
        Some((host, p)) => Ok((host, Some(port(p)?))),
        None => Ok((entry, None)),
    }
}

fn parse_entry(raw: &str) -> Result<Entry, String> {
    let entry = raw.trim();
    if entry.is_empty() {
        return Err("an entry is empty".into());
    }
    if entry.contains("://") || entry.contains('/') && !entry.contains('.') && !entry.contains(':')
    {
        return Err(format!(
            "`{entry}` is not a host: write `example.com`, `*.example.com`, `10.0.0.0/8` or `127.0.0.1:8080`, without a scheme or path"
        ));
    }
    if let Some((net, prefix)) = entry.split_once('/') {
        let (net, port) = split_port(net)?;
        let addr: IpAddr = net
            .parse()
            .map_err(|_| format!("`{net}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let (prefix, port) = match prefix.split_once(':') {
            Some((p, port)) => (
                p,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| format!("`{port}` is not a port number"))?,
                ),
            ),
            None => (prefix, port),
        };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`/{prefix}` is not a prefix length (0 to {max})"))?;
        return Ok(Entry::Net { addr, prefix, port });
    }
    let (host, port) = split_port(entry)?;
    if host == "*" {
        return Ok(Entry::Any { port });
    }
    if let Ok(addr) = host.parse::<IpAddr>() {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(Entry::Net { addr, prefix, port });
    }
    let (name, suffix) = match host.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (host, false),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(format!(
            "`{host}` is not a host name; write `example.com` or `*.example.com`"
        ));
    }
    Ok(Entry::Host {
        name: name.to_ascii_lowercase().trim_end_matches('.').to_owned(),
        suffix,
        port,
    })
}

fn in_net(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (canonical(addr), canonical(net)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) as the IPv4
/// address it is, so it cannot slip past the IPv4 checks.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The kind of an address, before the daemon's own ports are considered.
pub fn address_kind(addr: IpAddr) -> AddressKind {
    match canonical(addr) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                // Alibaba Cloud's metadata service.
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
            {
                AddressKind::Special
            } else if v4.is_private() || v4.is_loopback() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                AddressKind::Private
            } else {
                AddressKind::Public
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            // AWS's IPv6 metadata address.
            let metadata = v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            if metadata || v6.is_unspecified() || v6.is_multicast() || (first & 0xffc0) == 0xfe80 {
                AddressKind::Special
            } else if v6.is_loopback() || (first & 0xfe00) == 0xfc00 {
                AddressKind::Private
            } else {
                AddressKind::Public
            }
        }
    }
}

impl Allowlist {
    /// Parse `http_allow`; errors name the entry by its index.
    pub fn parse(entries: &[String]) -> Result<Allowlist, Vec<(usize, String)>> {
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in entries.iter().enumerate() {
            match parse_entry(raw) {
                Ok(entry) => parsed.push(entry),
                Err(message) => errors.push((i, message)),
            }
        }
        if errors.is_empty() {
            Ok(Allowlist { entries: parsed })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn port_ok(entry_port: Option<u16>, port: u16) -> bool {
        entry_port.is_none_or(|p| p == port)
    }

    fn host_named(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        self.entries.iter().any(|e| match e {
            Entry::Host {
                name,
                suffix,
                port: p,
            } => {
                Self::port_ok(*p, port)
                    && if *suffix {
                        host.len() > name.len()
                            && host.ends_with(name.as_str())
                            && host.as_bytes()[host.len() - name.len() - 1] == b'.'
                    } else {
                        host == name
                    }
            }
            _ => false,
        })
    }

    fn any_host(&self, port: u16) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Any { port: p } if Self::port_ok(*p, port)))
    }

    /// An address entry covering `addr`; with `exact_port`, only one that
    /// names this very port.
    fn covers(&self, addr: IpAddr, port: u16, exact_port: bool) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::Net {
                addr: net,
                prefix,
                port: p,
            } => {
                in_net(addr, *net, *prefix)
                    && if exact_port {
                        *p == Some(port)
                    } else {
                        Self::port_ok(*p, port)
                    }
            }
            _ => false,
        })
    }

    /// May a request for `host` (as written in the URL) go to `addr:port`,
    /// one of the addresses it resolved to? `own` are the daemon's
    /// listening sockets. The error says why not and what would allow it.
    pub fn check(
        &self,
        host: &str,
        addr: IpAddr,
        port: u16,
        own: &[SocketAddr],
    ) -> Result<(), String> {
        let addr = canonical(addr);
        let kind = if is_own(addr, port, own) {
            AddressKind::Own
        } else {
            address_kind(addr)
        };
        let named = self.host_named(host, port);
        let covered = self.covers(addr, port, false);
        let allowed = match kind {
            AddressKind::Public => named || covered || self.any_host(port),
            AddressKind::Private => named || covered,
            AddressKind::Special => covered,
            AddressKind::Own => self.covers(addr, port, true),
        };
        if allowed {
            return Ok(());
        }
        let target = SocketAddr::new(addr, port);
        Err(match kind {
            AddressKind::Own => format!(
                "`{host}` is this daemon itself ({target}); add `{target}` to settings.http_allow to allow it"
            ),
            AddressKind::Special => format!(
                "`{host}` resolves to {addr}, a link-local, metadata or otherwise special address; only an entry naming that address (`{addr}`) in settings.http_allow allows it"
            ),
            AddressKind::Private if !named && self.any_host(port) => format!(
                "`{host}` resolves to {addr}, a private or loopback address, which `*` does not cover; add `{host}` or `{addr}` to settings.http_allow"
            ),
            _ => format!(
                "`{host}` is not in settings.http_allow; add it (or `*.{domain}`) to allow requests to it",
                domain = host.split_once('.').map(|(_, d)| d).unwrap_or(host)
            ),
        })
    }
}

fn is_own(addr: IpAddr, port: u16, own: &[SocketAddr]) -> bool {
    own.iter().any(|listener| {
        listener.port() == port
            && (canonical(listener.ip()) == addr
                || (listener.ip().is_unspecified()
                    && matches!(
                        address_kind(addr),
                        AddressKind::Private | AddressKind::Special
                    )))
    })
}

/// The TCP sockets this process listens on (Linux: `/proc/self/net/tcp*`
/// matched with the process's own socket inodes). Elsewhere it knows none;
/// the loopback rules still apply.
pub fn own_listeners() -> Vec<SocketAddr> {
    #[cfg(target_os = "linux")]
    {
        linux::own_listeners().unwrap_or_default()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    pub(super) fn own_listeners() -> std::io::Result<Vec<SocketAddr>> {
        let mut inodes = HashSet::new();
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let Ok(target) = std::fs::read_link(entry?.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                inodes.insert(inode);
            }
        }
        let mut listeners = Vec::new();
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            listeners.extend(parse_table(&text, &inodes));
        }
        Ok(listeners)
    }

    /// Listening sockets (state `0A`) of a `/proc/net/tcp` table whose inode
    /// is one of ours.
    pub(super) fn parse_table(text: &str, inodes: &HashSet<u64>) -> Vec<SocketAddr> {
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 10 || fields[3] != "0A" {
                    return None;
                }
                let inode: u64 = fields[9].parse().ok()?;
                if !inodes.contains(&inode) {
                    return None;
                }
                parse_address(fields[1])
            })
            .collect()
    }

    /// `0100007F:1F90`: the address as the kernel holds it in memory,
    /// printed as native 32-bit words (one for IPv4, four for IPv6), then
    /// the port.
    fn parse_address(text: &str) -> Option<SocketAddr> {
        let (addr, port) = text.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
        let ip = match addr.len() {
            8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
            32 => {
                let mut bytes = [0u8; 16];
                for i in 0..4 {
                    bytes[i * 4..i * 4 + 4].copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?);
                }
                IpAddr::V6(Ipv6Addr::from(bytes))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_listening_sockets_of_its_own_inodes() {
            let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n\
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0\n\
   2: 0100007F:1F91 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0\n";
            let ours: HashSet<u64> = [111, 333].into();
            assert_eq!(
                parse_table(table, &ours),
                vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()],
                "only listening sockets that are ours"
            );
            let v6 = "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 444 1 0 100 0 0 10 0\n";
            assert_eq!(
                parse_table(v6, &[444].into()),
                vec!["[::1]:8080".parse::<SocketAddr>().unwrap()]
            );
        }

        #[test]
        fn finds_a_socket_this_process_listens_on() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            assert!(
                own_listeners().unwrap().contains(&addr),
                "{addr} among {:?}",
                own_listeners()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_or_say_why() {
        let bad = Allowlist::parse(&[
            "example.com".into(),
            "https://example.com".into(),
            "10.0.0.0/33".into(),
            "example.com:http".into(),
            "exa mple.com".into(),
            "".into(),
        ])
        .unwrap_err();
        let indexes: Vec<usize> = bad.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2, 3, 4, 5]);
        for entry in [
            "*",
            "*:443",
            "*.example.com",
            "[::1]:8080",
            "::1",
            "10.0.0.0/8",
            "127.0.0.1:7700",
        ] {
            assert!(Allowlist::parse(&[entry.to_string()]).is_ok(), "{entry}");
        }
    }

    #[test]
    fn public_hosts_need_an_entry() {
        let none = list(&[]);
        let public = ip("93.184.215.14");
        assert!(none.check("example.com", public, 443, &[]).is_err());
        let named = list(&["example.com"]);
        assert!(named.check("example.com", public, 443, &[]).is_ok());
        assert!(named.check("EXAMPLE.com.", public, 443, &[]).is_ok());
        assert!(named.check("api.example.com", public, 443, &[]).is_err());
        let wildcard = list(&["*.example.com"]);
        assert!(wildcard.check("api.example.com", public, 443, &[]).is_ok());
        assert!(wildcard.check("example.com", public, 443, &[]).is_err());
        assert!(wildcard.check("badexample.com", public, 443, &[]).is_err());
        let port = list(&["example.com:8443"]);
        assert!(port.check("example.com", public, 8443, &[]).is_ok());
        assert!(port.check("example.com", public, 443, &[]).is_err());
        assert!(list(&["*"]).check("anything.org", public, 80, &[]).is_ok());
    }

    #[test]
    fn private_addresses_need_a_named_entry() {
        let any = list(&["*"]);
        let error = any
            .check("intranet", ip("192.168.1.10"), 80, &[])
            .unwrap_err();
        assert!(error.contains("`*` does not cover"), "{error}");
        assert!(
            list(&["intranet"])
                .check("intranet", ip("192.168.1.10"), 80, &[])
                .is_ok()
        );
        assert!(
            list(&["192.168.0.0/16"])
                .check("intranet", ip("192.168.1.10"), 80, &[])
                .is_ok()
        );
        assert!(
            list(&["127.0.0.1"])
                .check("127.0.0.1", ip("127.0.0.1"), 9000, &[])
                .is_ok()
        );
        assert!(
            list(&["localhost"])
                .check("localhost", ip("::1"), 9000, &[])
                .is_ok()
        );
    }

    #[test]
    fn metadata_and_link_local_need_their_address() {
        let metadata = ip("169.254.169.254");
        for entries in [&["*"][..], &["169.254.169.254.nip.io"], &["metadata"]] {
            let allow = list(entries);
            assert!(
                allow.check("metadata", metadata, 80, &[]).is_err(),
                "{entries:?}"
            );
        }
        assert!(
            list(&["169.254.169.254"])
                .check("169.254.169.254", metadata, 80, &[])
                .is_ok()
        );
        assert!(
            list(&["169.254.0.0/16"])
                .check("x", metadata, 80, &[])
                .is_ok()
        );
        // The same address in IPv6 clothing.
        assert!(
            list(&["*"])
                .check("x", ip("::ffff:169.254.169.254"), 80, &[])
                .is_err()
        );
        assert!(
            list(&["*"])
                .check("x", ip("fd00:ec2::254"), 80, &[])
                .is_err()
        );
        assert!(list(&["*"]).check("x", ip("0.0.0.0"), 80, &[]).is_err());
        assert!(list(&["*"]).check("x", ip("fe80::1"), 80, &[]).is_err());
    }

    #[test]
    fn the_daemon_itself_needs_its_exact_port() {
        let own = ["127.0.0.1:7700".parse().unwrap()];
        let loopback = ip("127.0.0.1");
        let error = list(&["127.0.0.1", "localhost"])
            .check("localhost", loopback, 7700, &own)
            .unwrap_err();
        assert!(error.contains("this daemon itself"), "{error}");
        assert!(
            list(&["127.0.0.1"])
                .check("localhost", loopback, 7701, &own)
                .is_ok()
        );
        assert!(
            list(&["127.0.0.1:7700"])
                .check("localhost", loopback, 7700, &own)
                .is_ok()
        );
        // Listening on every address: its port on a private address is ours too.
        let any = ["0.0.0.0:7700".parse().unwrap()];
        assert!(
            list(&["10.0.0.0/8"])
                .check("me", ip("10.1.2.3"), 7700, &any)
                .is_err()
        );
    }
}
