//! Who may open /dev/kvm, and why this process may not: the device's owner, group, mode and ACL
//! against the process's user and groups (`Groups:` of /proc/self/status) and /etc/group.
//!
//! A process's groups are fixed when its session starts: a user added to `kvm` with `usermod -aG`
//! gets the group only after logging in again. That case (in the group in /etc/group, not in this
//! process) is told apart from "not in the group at all" and from "the mode allows it, so a
//! security module denied it".

use serde::Serialize;

use crate::evidence::Evidence;
use crate::Host;

/// The ownership, mode and ACL of /dev/kvm, and this process's standing against them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AccessReport {
    /// Owner uid.
    pub owner_uid: u32,
    /// Owner name (from /etc/passwd), when known.
    pub owner: Option<String>,
    /// Group gid.
    pub group_gid: u32,
    /// Group name (from /etc/group), when known.
    pub group: Option<String>,
    /// Permission bits in octal ("0660").
    pub mode: String,
    /// POSIX ACL entries beyond the mode ("user:1001:rw-", "group:kvm:rw-"), empty without an ACL.
    pub acl: Vec<String>,
    /// This process's effective uid.
    pub uid: u32,
    /// This process's user name (from /etc/passwd), when known.
    pub user: Option<String>,
    /// This process's groups (`Groups:` of /proc/self/status, plus the effective gid); `None`
    /// when /proc/self/status could not be parsed.
    pub process_groups: Option<Vec<u32>>,
    /// Whether /etc/group (or the user's primary group in /etc/passwd) puts the user in the
    /// device's group; `None` when the user or the files are not known.
    pub user_in_group: Option<bool>,
    /// Whether this process has the device's group.
    pub process_in_group: Option<bool>,
    /// Whether the mode and ACL grant this process read and write: when they do and open() still
    /// failed with EACCES, a security module (SELinux, AppArmor) denied it.
    pub allowed_by_mode: Option<bool>,
}

/// The facts of the device node, as `stat` and `getxattr` give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFacts<'a> {
    /// st_uid.
    pub uid: u32,
    /// st_gid.
    pub gid: u32,
    /// st_mode.
    pub mode: u32,
    /// The raw `system.posix_acl_access` value, if any.
    pub acl: Option<&'a [u8]>,
}

const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;

/// One entry of a POSIX ACL xattr (include/uapi/linux/posix_acl_xattr.h: a u32 version 2, then
/// entries of u16 tag, u16 perm, u32 id, little endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

fn parse_acl(raw: &[u8]) -> Vec<AclEntry> {
    if raw.len() < 4 || u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) != 2 {
        return Vec::new();
    }
    raw[4..]
        .chunks_exact(8)
        .map(|c| AclEntry {
            tag: u16::from_le_bytes([c[0], c[1]]),
            perm: u16::from_le_bytes([c[2], c[3]]),
            id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

fn rwx(p: u16) -> String {
    [(4, 'r'), (2, 'w'), (1, 'x')]
        .iter()
        .map(|&(b, c)| if p & b != 0 { c } else { '-' })
        .collect()
}

/// `name:x:id:...` lines of /etc/passwd or /etc/group: the name for `id`.
fn name_of(db: &str, id: u32) -> Option<String> {
    db.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next();
        (f.next()?.trim().parse::<u32>().ok()? == id).then(|| name.to_string())
    })
}

/// The members listed for group `gid` in /etc/group.
fn members(group_db: &str, gid: u32) -> Option<Vec<String>> {
    group_db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || f[2].trim().parse::<u32>().ok()? != gid {
            return None;
        }
        Some(
            f[3].split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
        )
    })
}

/// The primary gid of `user` in /etc/passwd.
fn primary_gid(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == user).then(|| f[3].trim().parse().ok())?
    })
}

/// Judges access from the node's facts and the process's. Pure, for tests.
///
/// `status` is /proc/self/status (its `Groups:` are read with procfs-core's parser), `group_db` and
/// `passwd` the text of /etc/group and /etc/passwd.
pub fn judge(
    node: NodeFacts<'_>,
    euid: u32,
    egid: u32,
    status: Option<&str>,
    group_db: Option<&str>,
    passwd: Option<&str>,
) -> AccessReport {
    use procfs_core::FromRead;
    let groups = status
        .and_then(|s| procfs_core::process::Status::from_read(s.as_bytes()).ok())
        .map(|st| {
            let mut g = st.groups;
            if !g.contains(&egid) {
                g.push(egid);
            }
            g
        });
    let acl = node.acl.map(parse_acl).unwrap_or_default();
    let user = passwd.and_then(|p| name_of(p, euid));
    let owner = passwd.and_then(|p| name_of(p, node.uid));
    let group = group_db.and_then(|g| name_of(g, node.gid));
    let user_in_group = match (&user, group_db) {
        (Some(u), Some(db)) => Some(
            members(db, node.gid).is_some_and(|m| m.iter().any(|x| x == u))
                || passwd.and_then(|p| primary_gid(p, u)) == Some(node.gid),
        ),
        _ => None,
    };
    let process_in_group = groups.as_ref().map(|g| g.contains(&node.gid));
    let name_for = |tag: u16, id: u32| -> String {
        match tag {
            ACL_USER => passwd
                .and_then(|p| name_of(p, id))
                .unwrap_or_else(|| id.to_string()),
            _ => group_db
                .and_then(|g| name_of(g, id))
                .unwrap_or_else(|| id.to_string()),
        }
    };
    let acl_text: Vec<String> = acl
        .iter()
        .filter(|e| matches!(e.tag, ACL_USER | ACL_GROUP | ACL_MASK))
        .map(|e| match e.tag {
            ACL_USER => format!("user:{}:{}", name_for(e.tag, e.id), rwx(e.perm)),
            ACL_GROUP => format!("group:{}:{}", name_for(e.tag, e.id), rwx(e.perm)),
            _ => format!("mask::{}", rwx(e.perm)),
        })
        .collect();
    // The kernel's order (acl_permission_check, posix_acl_permission): owner, named users, the
    // owning and named groups (limited by the mask), then other.
    let rw = |p: u32| p & 6 == 6;
    let allowed_by_mode = groups.as_ref().map(|g| {
        if euid == 0 {
            return true;
        }
        let mode = node.mode & 0o777;
        if euid == node.uid {
            return rw(mode >> 6);
        }
        let mask = acl
            .iter()
            .find(|e| e.tag == ACL_MASK)
            .map_or(7, |e| u32::from(e.perm));
        if let Some(e) = acl.iter().find(|e| e.tag == ACL_USER && e.id == euid) {
            return rw(u32::from(e.perm) & mask);
        }
        let mut in_some_group = false;
        let group_perm = if acl.is_empty() {
            mode >> 3 & 7
        } else {
            mode >> 3 & 7 & mask
        };
        if g.contains(&node.gid) {
            in_some_group = true;
            if rw(group_perm) {
                return true;
            }
        }
        for e in acl.iter().filter(|e| e.tag == ACL_GROUP && g.contains(&e.id)) {
            in_some_group = true;
            if rw(u32::from(e.perm) & mask) {
                return true;
            }
        }
        !in_some_group && rw(mode)
    });
    AccessReport {
        owner_uid: node.uid,
        owner,
        group_gid: node.gid,
        group,
        mode: format!("{:04o}", node.mode & 0o7777),
        acl: acl_text,
        uid: euid,
        user,
        process_groups: groups,
        user_in_group,
        process_in_group,
        allowed_by_mode,
    }
}

/// Reads the facts for a live /dev/kvm that refused this process (EACCES).
pub(crate) fn inspect(host: &Host, ev: &mut Vec<Evidence>) -> Option<AccessReport> {
    use std::os::unix::fs::MetadataExt;
    let meta = host.metadata("/dev/kvm").ok()?;
    let acl = host.xattr("/dev/kvm", "system.posix_acl_access").ok();
    let status = host.read("/proc/self/status").ok();
    let group_db = host.read("/etc/group").ok();
    let passwd = host.read("/etc/passwd").ok();
    // SAFETY: geteuid and getegid take no arguments and cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let r = judge(
        NodeFacts {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            acl: acl.as_deref(),
        },
        euid,
        egid,
        status.as_deref(),
        group_db.as_deref(),
        passwd.as_deref(),
    );
    ev.push(Evidence::new(
        "/dev/kvm",
        format!(
            "owner {}:{} mode {}{}",
            r.owner.clone().unwrap_or_else(|| r.owner_uid.to_string()),
            r.group.clone().unwrap_or_else(|| r.group_gid.to_string()),
            r.mode,
            if r.acl.is_empty() {
                String::new()
            } else {
                format!(", ACL {}", r.acl.join(" "))
            }
        ),
    ));
    ev.push(Evidence::new(
        "/proc/self/status",
        format!(
            "uid {}{}, groups {}",
            r.uid,
            r.user.as_ref().map(|u| format!(" ({u})")).unwrap_or_default(),
            r.process_groups.as_ref().map_or("unknown".into(), |g| {
                g.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
            })
        ),
    ));
    if let (Some(g), Some(inside)) = (&r.group, r.user_in_group) {
        ev.push(Evidence::new(
            "/etc/group",
            format!(
                "{} {} in group {g}",
                r.user.as_deref().unwrap_or("the user"),
                if inside { "is" } else { "is not" }
            ),
        ));
    }
    Some(r)
}

/// The remedy for a refused /dev/kvm, from what [`judge`] found: the actual group, "log in again"
/// when only this process lacks it, and the ACL and udev forms for CI runners and services.
pub fn remedy(a: Option<&AccessReport>) -> String {
    let Some(a) = a else {
        return "Add the user to the group that owns /dev/kvm (usually `kvm`: usermod -aG kvm USER, then log in again), or run as root".into();
    };
    let user = a.user.clone().unwrap_or_else(|| "USER".into());
    let group = a.group.clone().unwrap_or_else(|| a.group_gid.to_string());
    let ci = format!(
        "for CI runners and services, `setfacl -m u:{user}:rw /dev/kvm` (until reboot) or the udev rule KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0666\", OPTIONS+=\"static_node=kvm\" in /etc/udev/rules.d/99-kvm4all.rules followed by `udevadm control --reload-rules && udevadm trigger --name-match=kvm`"
    );
    let mode = u32::from_str_radix(&a.mode, 8).unwrap_or(0);
    let first = if a.allowed_by_mode == Some(true) {
        "The mode and ACL allow this process, so a security module denied it: look for SELinux (`ausearch -m avc`) or AppArmor (`journalctl -k | grep apparmor`) denials of /dev/kvm".to_string()
    } else if mode & 0o060 != 0o060 {
        format!(
            "/dev/kvm is {}:{group} mode {}, so even its group cannot use it: restore the usual root:kvm 0660 (`chgrp kvm /dev/kvm && chmod 0660 /dev/kvm`, and check the udev rules that set it)",
            a.owner.clone().unwrap_or_else(|| a.owner_uid.to_string()),
            a.mode
        )
    } else if a.user_in_group == Some(true) && a.process_in_group == Some(false) {
        format!(
            "{user} is in group {group} (/etc/group) but this process is not, because a process's groups are fixed at login: log in again (or run `newgrp {group}`, or restart the service or runner)"
        )
    } else {
        format!("Add {user} to group {group} (`sudo usermod -aG {group} {user}`), then log in again")
    };
    format!("{first}; {ci}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tnestcore\nUmask:\t0022\nState:\tR (running)\nTgid:\t42\nNgid:\t0\nPid:\t42\nPPid:\t1\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nGroups:\t1000 27 \nVmPeak:\t    1000 kB\nThreads:\t1\nSigQ:\t0/100\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nkvm:x:992:alice,bob\nalice:x:1000:\n";
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nci:x:1001:1001::/home/ci:/bin/sh\n";

    fn node(mode: u32) -> NodeFacts<'static> {
        NodeFacts {
            uid: 0,
            gid: 992,
            mode: 0o20000 | mode,
            acl: None,
        }
    }

    #[test]
    fn in_the_group_but_not_this_process_means_log_in_again() {
        let a = judge(node(0o660), 1000, 1000, Some(STATUS), Some(GROUP), Some(PASSWD));
        assert_eq!(a.group.as_deref(), Some("kvm"));
        assert_eq!(a.user.as_deref(), Some("alice"));
        assert_eq!(a.mode, "0660");
        assert_eq!(a.process_groups, Some(vec![1000, 27]));
        assert_eq!(a.user_in_group, Some(true));
        assert_eq!(a.process_in_group, Some(false));
        assert_eq!(a.allowed_by_mode, Some(false));
        let r = remedy(Some(&a));
        assert!(r.contains("alice is in group kvm"), "{r}");
        assert!(r.contains("log in again"), "{r}");
        assert!(r.contains("newgrp kvm"), "{r}");
        assert!(r.contains("setfacl -m u:alice:rw /dev/kvm"), "{r}");
        assert!(r.contains("99-kvm4all.rules"), "{r}");
    }

    #[test]
    fn not_in_the_group_names_the_actual_group() {
        let group = "root:x:0:\nhypervisor:x:992:bob\n";
        let a = judge(node(0o660), 1000, 1000, Some(STATUS), Some(group), Some(PASSWD));
        assert_eq!(a.user_in_group, Some(false));
        let r = remedy(Some(&a));
        assert!(r.contains("sudo usermod -aG hypervisor alice"), "{r}");
    }

    #[test]
    fn a_mode_without_group_access_is_named() {
        let a = judge(node(0o600), 1000, 1000, Some(STATUS), Some(GROUP), Some(PASSWD));
        let r = remedy(Some(&a));
        assert!(r.contains("mode 0600"), "{r}");
    }

    #[test]
    fn an_acl_that_allows_points_at_a_security_module() {
        // version 2; user_obj rw; user 1000 rw; group_obj rw; mask rw; other ---.
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 6, 1000),
            (4, 6, u32::MAX),
            (0x10, 6, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            acl.extend(tag.to_le_bytes());
            acl.extend(perm.to_le_bytes());
            acl.extend(id.to_le_bytes());
        }
        let n = NodeFacts {
            acl: Some(&acl),
            ..node(0o660)
        };
        let a = judge(n, 1000, 1000, Some(STATUS), Some(GROUP), Some(PASSWD));
        assert_eq!(a.acl, vec!["user:alice:rw-".to_string(), "mask::rw-".to_string()]);
        assert_eq!(a.allowed_by_mode, Some(true));
        assert!(remedy(Some(&a)).contains("security module"));
        // The same ACL with the mask cleared grants nothing.
        let mut masked = acl.clone();
        let at = 4 + 3 * 8 + 2;
        masked[at] = 0;
        let n = NodeFacts {
            acl: Some(&masked),
            ..node(0o660)
        };
        assert_eq!(
            judge(n, 1000, 1000, Some(STATUS), Some(GROUP), Some(PASSWD)).allowed_by_mode,
            Some(false)
        );
    }

    #[test]
    fn unparsable_status_or_missing_files_are_unknown_not_wrong() {
        let a = judge(node(0o660), 1000, 1000, Some("Groups:\t992\n"), None, None);
        assert_eq!(a.process_groups, None);
        assert_eq!(a.user_in_group, None);
        assert_eq!(a.allowed_by_mode, None);
        let r = remedy(Some(&a));
        assert!(r.contains("usermod -aG 992 USER"), "{r}");
        assert!(remedy(None).contains("usermod -aG kvm USER"));
        for junk in ["", "\0\0", "::::", "kvm:x:notanumber:alice"] {
            let _ = judge(node(0o660), 1000, 1000, Some(junk), Some(junk), Some(junk));
        }
        assert!(parse_acl(&[2, 0, 0, 0, 1]).is_empty());
        assert!(parse_acl(&[3, 0, 0, 0]).is_empty());
    }
}
