//! Distribution capability flags (`DFLAG_*`), exchanged in the handshake.
//!
//! Values from OTP's `dist.hrl` / `dist.h`. Note that the "Distribution Protocol" guide
//! lists `MANDATORY_25_DIGEST` as `1 bsl 36`; the real value (used on the wire by every
//! implementation) is bit 26.

pub const PUBLISHED: u64 = 0x1;
pub const ATOM_CACHE: u64 = 0x2;
pub const EXTENDED_REFERENCES: u64 = 0x4;
pub const DIST_MONITOR: u64 = 0x8;
pub const FUN_TAGS: u64 = 0x10;
pub const DIST_MONITOR_NAME: u64 = 0x20;
pub const HIDDEN_ATOM_CACHE: u64 = 0x40;
pub const NEW_FUN_TAGS: u64 = 0x80;
pub const EXTENDED_PIDS_PORTS: u64 = 0x100;
pub const EXPORT_PTR_TAG: u64 = 0x200;
pub const BIT_BINARIES: u64 = 0x400;
pub const NEW_FLOATS: u64 = 0x800;
pub const UNICODE_IO: u64 = 0x1000;
pub const DIST_HDR_ATOM_CACHE: u64 = 0x2000;
pub const SMALL_ATOM_TAGS: u64 = 0x4000;
pub const ETS_COMPRESSED: u64 = 0x8000;
pub const UTF8_ATOMS: u64 = 0x10000;
pub const MAP_TAG: u64 = 0x20000;
pub const BIG_CREATION: u64 = 0x40000;
pub const SEND_SENDER: u64 = 0x80000;
pub const BIG_SEQTRACE_LABELS: u64 = 0x100000;
pub const PENDING_CONNECT: u64 = 0x200000;
pub const EXIT_PAYLOAD: u64 = 0x400000;
pub const FRAGMENTS: u64 = 0x800000;
pub const HANDSHAKE_23: u64 = 0x1000000;
pub const UNLINK_ID: u64 = 0x2000000;
pub const MANDATORY_25_DIGEST: u64 = 0x4000000;
pub const SPAWN: u64 = 1 << 32;
pub const NAME_ME: u64 = 1 << 33;
pub const V4_NC: u64 = 1 << 34;
pub const ALIAS: u64 = 1 << 35;
pub const LOCAL_EXT: u64 = 1 << 36;
pub const ALTACT_SIG: u64 = 1 << 37;

/// What OTP 25 requires of a peer; `MANDATORY_25_DIGEST` stands for exactly these bits.
pub const MANDATORY_25: u64 = EXTENDED_REFERENCES
    | FUN_TAGS
    | NEW_FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | HANDSHAKE_23;

/// The bits OTP 26 added to the mandatory set.
pub const MANDATORY_26: u64 = UNLINK_ID | V4_NC;

/// What we require of a peer: OTP 26's mandatory set (our codec always emits V4_NC forms and
/// our link code speaks only the UNLINK_ID protocol).
pub const REQUIRED: u64 = MANDATORY_25 | MANDATORY_26;

/// Our advertisement (the caller adds `PUBLISHED` for a visible node). Numerically
/// `0xD07DF7FBC`, OTP 25's own default set.
pub const DEFAULT: u64 = MANDATORY_25
    | UNLINK_ID
    | V4_NC
    | MANDATORY_25_DIGEST
    | DIST_MONITOR
    | DIST_MONITOR_NAME
    | UNICODE_IO
    | SMALL_ATOM_TAGS
    | SEND_SENDER
    | BIG_SEQTRACE_LABELS
    | EXIT_PAYLOAD
    | SPAWN
    | ALIAS
    | FRAGMENTS
    | DIST_HDR_ATOM_CACHE;

const NAMES: &[(u64, &str)] = &[
    (PUBLISHED, "PUBLISHED"),
    (ATOM_CACHE, "ATOM_CACHE"),
    (EXTENDED_REFERENCES, "EXTENDED_REFERENCES"),
    (DIST_MONITOR, "DIST_MONITOR"),
    (FUN_TAGS, "FUN_TAGS"),
    (DIST_MONITOR_NAME, "DIST_MONITOR_NAME"),
    (HIDDEN_ATOM_CACHE, "HIDDEN_ATOM_CACHE"),
    (NEW_FUN_TAGS, "NEW_FUN_TAGS"),
    (EXTENDED_PIDS_PORTS, "EXTENDED_PIDS_PORTS"),
    (EXPORT_PTR_TAG, "EXPORT_PTR_TAG"),
    (BIT_BINARIES, "BIT_BINARIES"),
    (NEW_FLOATS, "NEW_FLOATS"),
    (UNICODE_IO, "UNICODE_IO"),
    (DIST_HDR_ATOM_CACHE, "DIST_HDR_ATOM_CACHE"),
    (SMALL_ATOM_TAGS, "SMALL_ATOM_TAGS"),
    (ETS_COMPRESSED, "ETS_COMPRESSED"),
    (UTF8_ATOMS, "UTF8_ATOMS"),
    (MAP_TAG, "MAP_TAG"),
    (BIG_CREATION, "BIG_CREATION"),
    (SEND_SENDER, "SEND_SENDER"),
    (BIG_SEQTRACE_LABELS, "BIG_SEQTRACE_LABELS"),
    (PENDING_CONNECT, "PENDING_CONNECT"),
    (EXIT_PAYLOAD, "EXIT_PAYLOAD"),
    (FRAGMENTS, "FRAGMENTS"),
    (HANDSHAKE_23, "HANDSHAKE_23"),
    (UNLINK_ID, "UNLINK_ID"),
    (MANDATORY_25_DIGEST, "MANDATORY_25_DIGEST"),
    (SPAWN, "SPAWN"),
    (NAME_ME, "NAME_ME"),
    (V4_NC, "V4_NC"),
    (ALIAS, "ALIAS"),
    (LOCAL_EXT, "LOCAL_EXT"),
    (ALTACT_SIG, "ALTACT_SIG"),
];

/// The name of a single flag bit (`"UNKNOWN"` for bits without one).
pub fn name(flag: u64) -> &'static str {
    NAMES
        .iter()
        .find(|(bit, _)| *bit == flag)
        .map(|(_, name)| *name)
        .unwrap_or("UNKNOWN")
}

/// The names of all bits set in `flags`, lowest bit first.
pub fn names(flags: u64) -> Vec<&'static str> {
    (0..64)
        .map(|i| 1u64 << i)
        .filter(|bit| flags & bit != 0)
        .map(name)
        .collect()
}

/// A peer's flags with `MANDATORY_25_DIGEST` replaced by the bits it stands for.
pub fn expand(flags: u64) -> u64 {
    if flags & MANDATORY_25_DIGEST != 0 {
        flags | MANDATORY_25
    } else {
        flags
    }
}

/// The names of the `required` flags missing from the peer's (expanded) flags; empty when
/// the peer is acceptable.
pub fn missing(peer_flags: u64, required: u64) -> Vec<&'static str> {
    names(required & !expand(peer_flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_otp25_default_set() {
        assert_eq!(DEFAULT, 0xD07DF7FBC);
        assert_eq!(MANDATORY_25, 0x1070F94);
        assert_eq!(REQUIRED, 0x403070F94);
    }

    #[test]
    fn digest_expands_to_mandatory_25() {
        let peer = MANDATORY_25_DIGEST | UNLINK_ID | V4_NC | DIST_MONITOR;
        assert!(missing(peer, REQUIRED).is_empty());
        assert_eq!(
            missing(MANDATORY_25_DIGEST, REQUIRED),
            vec!["UNLINK_ID", "V4_NC"]
        );
    }

    #[test]
    fn missing_names_flags() {
        let peer = REQUIRED & !MAP_TAG;
        assert_eq!(missing(peer, REQUIRED), vec!["MAP_TAG"]);
        assert!(missing(0x407070F94, REQUIRED).is_empty()); // Jinterface 1.13
        assert!(missing(0xD07DF7FBD, REQUIRED).is_empty()); // OTP 25
        assert_eq!(name(1 << 50), "UNKNOWN");
    }
}
