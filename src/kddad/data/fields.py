"""The KDD Cup 99 record layout: column names and types, feature sets, attack categories.

Kept free of pandas/torch imports so configuration validation can use it cheaply.
"""

from __future__ import annotations

CATEGORICAL = ("protocol_type", "service", "flag")

#: The 41 features in file order, as named in the KDD Cup 99 task description.
FEATURES: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
NUMERIC: tuple[str, ...] = tuple(c for c in FEATURES if c not in CATEGORICAL)
RATES: tuple[str, ...] = tuple(c for c in FEATURES if c.endswith("_rate"))
BINARY = ("land", "logged_in", "root_shell", "is_host_login", "is_guest_login")
#: Counts, sizes and durations: non-negative with long right tails, so log1p helps them.
HEAVY_TAILED: tuple[str, ...] = tuple(c for c in NUMERIC if c not in RATES and c not in BINARY)
#: Connections counted in a window (the last 2 seconds, or the last 100 to one host): bounded
#: (0-511, 0-255), and their extremes are what DoS floods look like.
WINDOW_COUNTS = ("count", "srv_count", "dst_host_count", "dst_host_srv_count")
#: Sizes, durations and the content features of a session (hot, failed logins, root accesses…).
SIZES_AND_CONTENT: tuple[str, ...] = tuple(c for c in HEAVY_TAILED if c not in WINDOW_COUNTS)
LOG1P_SETS: dict[str, tuple[str, ...]] = {"heavy_tailed": HEAVY_TAILED, "sizes_and_content": SIZES_AND_CONTENT}


def log1p_columns(spec: bool | str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The columns ``scaling.log1p`` names: true (every heavy-tailed count), false, a set's name, or a list."""
    if isinstance(spec, bool):
        return HEAVY_TAILED if spec else ()
    if isinstance(spec, str):
        try:
            return LOG1P_SETS[spec]
        except KeyError:
            raise ValueError(
                f"unknown log1p set {spec!r}; expected true, false, one of {sorted(LOG1P_SETS)} "
                "or a list of columns ([src_bytes, hot])"
            ) from None
    bad = [c for c in spec if c not in NUMERIC]
    if bad:
        raise ValueError(f"log1p: {bad} are not numeric KDD columns")
    return tuple(spec)


#: Columns stored as floats (rates in [0, 1]); every other numeric column is an integer.
FLOAT_COLUMNS = RATES

ALIBI18: tuple[str, ...] = ("srv_count",) + RATES[:7] + tuple(c for c in FEATURES if c.startswith("dst_host"))
FEATURE_SETS: dict[str, tuple[str, ...]] = {"alibi18": ALIBI18, "all41": FEATURES}

#: What the split stage adds to the 41 features.
LABEL, CATEGORY, IS_OUTLIER, ROW = "label", "category", "is_outlier", "row"
#: NSL-KDD's 43rd column: how many of 21 learners classified the record correctly (KDDTest-21
#: is KDDTest+ without the records all 21 got right).
DIFFICULTY = "difficulty"

#: Attack name → category, KDD Cup 99 plus the attacks NSL-KDD's test set adds.
ATTACK_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        ["back", "land", "neptune", "pod", "smurf", "teardrop", "apache2", "mailbomb", "processtable", "udpstorm"],
        "dos",
    ),
    **dict.fromkeys(["ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"], "probe"),
    **dict.fromkeys(
        [
            "ftp_write",
            "guess_passwd",
            "imap",
            "multihop",
            "phf",
            "spy",
            "warezclient",
            "warezmaster",
            "httptunnel",
            "named",
            "sendmail",
            "snmpgetattack",
            "snmpguess",
            "worm",
            "xlock",
            "xsnoop",
        ],
        "r2l",
    ),
    **dict.fromkeys(["buffer_overflow", "loadmodule", "perl", "rootkit", "ps", "sqlattack", "xterm"], "u2r"),
}
CATEGORIES = ("normal", "dos", "probe", "r2l", "u2r", "unknown")
ATTACK_CLASSES = ("dos", "probe", "r2l", "u2r")


def feature_set(name_or_columns: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Resolve a feature-set name (alibi18, all41) or an explicit column list."""
    if isinstance(name_or_columns, str):
        try:
            return FEATURE_SETS[name_or_columns]
        except KeyError:
            raise ValueError(
                f"unknown feature set {name_or_columns!r}; expected one of {sorted(FEATURE_SETS)} or a list of columns"
            ) from None
    unknown = [c for c in name_or_columns if c not in FEATURES]
    if unknown:
        raise ValueError(f"unknown KDD column(s) {unknown}; expected names from the 41 KDD features")
    return tuple(name_or_columns)
