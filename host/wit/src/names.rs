//! One name table per WIT enum (and the `features` flags): the kebab-case names the WIT gives
//! its cases, used by config files, the sync log, `--json` output and the API alike. Each
//! enum gets `name()`, `from_name()`, `Display`, and serde by name, so no other crate keeps
//! a mirror of a WIT enum.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::Level;
use crate::types::{
    AppCredentialKind, Attribute, AuthFailure, Cloud, CredentialKind, DataSet, Features, MatchKey,
    MatchState, PersonStatus, RemovalPolicy, SyncMode, UpsertKind,
};

/// A WIT enum known by its case names.
pub trait WitName: Sized + Copy + PartialEq + 'static {
    /// The WIT enum's name, for error messages.
    const KIND: &'static str;
    /// Every case, in WIT order.
    const CASES: &'static [Self];
    /// The cases' names, in the same order.
    const NAMES: &'static [&'static str];

    /// This case's WIT name.
    fn name(self) -> &'static str {
        let index = Self::CASES.iter().position(|c| *c == self);
        index.map_or("?", |i| Self::NAMES[i])
    }

    /// The case of this WIT name.
    fn from_name(name: &str) -> Option<Self> {
        let index = Self::NAMES.iter().position(|n| *n == name)?;
        Some(Self::CASES[index])
    }
}

struct NameVisitor<T>(PhantomData<T>);

impl<T: WitName> Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} name", T::KIND)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        T::from_name(value).ok_or_else(|| E::unknown_variant(value, T::NAMES))
    }
}

macro_rules! wit_names {
    ($ty:ident, $kind:literal, { $($case:ident => $name:literal),+ $(,)? }) => {
        impl WitName for $ty {
            const KIND: &'static str = $kind;
            const CASES: &'static [Self] = &[$($ty::$case),+];
            const NAMES: &'static [&'static str] = &[$($name),+];

            fn name(self) -> &'static str {
                match self {
                    $($ty::$case => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(NameVisitor::<$ty>(PhantomData))
            }
        }
    };
}

wit_names!(Cloud, "cloud", {
    Global => "global", UsGov => "us-gov", UsGovDod => "us-gov-dod", China => "china",
});
wit_names!(SyncMode, "sync mode", { Full => "full", Incremental => "incremental" });
wit_names!(Attribute, "attribute", {
    ProductName => "product-name", Sku => "sku", Country => "country",
    UsageLocation => "usage-location", Department => "department", JobTitle => "job-title",
    Office => "office", Company => "company", Group => "group",
});
wit_names!(MatchKey, "match key", { Email => "email", UserPrincipalName => "user-principal-name" });
wit_names!(RemovalPolicy, "removal policy", {
    Keep => "keep", Flag => "flag", Deactivate => "deactivate", Delete => "delete",
});
wit_names!(DataSet, "data set", {
    Users => "users", Groups => "groups", GroupMembers => "group-members",
    Subscriptions => "subscriptions", Organization => "organization", Domains => "domains",
    Mailboxes => "mailboxes", Usage => "usage",
});
wit_names!(AuthFailure, "auth failure", {
    InvalidSecret => "invalid-secret", ExpiredSecret => "expired-secret",
    AppNotFound => "app-not-found", TenantNotFound => "tenant-not-found",
    ConsentMissing => "consent-missing", InvalidAssertion => "invalid-assertion",
    Other => "other",
});
wit_names!(CredentialKind, "credential kind", {
    ClientSecret => "client-secret", ClientAssertion => "client-assertion",
});
wit_names!(AppCredentialKind, "app credential kind", {
    Password => "password", Certificate => "certificate",
});
wit_names!(PersonStatus, "person status", {
    Active => "active", Removed => "removed", Flagged => "flagged", Inactive => "inactive",
});
wit_names!(UpsertKind, "upsert kind", { Create => "create", Update => "update", Link => "link" });
wit_names!(MatchState, "match state", {
    Matched => "matched", Suggested => "suggested", Unmatched => "unmatched", Ignored => "ignored",
});
wit_names!(Level, "log level", {
    Trace => "trace", Debug => "debug", Info => "info", Warn => "warn", Error => "error",
});

/// The `features` flags by name, in WIT order.
pub const FEATURES: &[(Features, &str)] = &[
    (Features::USERS, "users"),
    (Features::MANAGERS, "managers"),
    (Features::SIGN_IN_ACTIVITY, "sign-in-activity"),
    (Features::GROUPS, "groups"),
    (Features::LICENCES, "licences"),
    (Features::ORGANIZATION, "organization"),
    (Features::MAILBOXES, "mailboxes"),
    (Features::USAGE_REPORTS, "usage-reports"),
];

/// The flag of one feature name.
pub fn feature_from_name(name: &str) -> Option<Features> {
    FEATURES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
}

/// The names of the features set in `features`, in WIT order.
pub fn feature_names(features: Features) -> Vec<&'static str> {
    FEATURES
        .iter()
        .filter(|(f, _)| features.contains(*f))
        .map(|(_, n)| *n)
        .collect()
}

/// `features` as a list of names in serde (`#[serde(with = "features_by_name")]`).
pub mod features_by_name {
    use super::*;

    pub fn serialize<S: Serializer>(features: &Features, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(feature_names(*features))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Features, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().try_fold(Features::empty(), |all, name| {
            feature_from_name(name)
                .map(|flag| all | flag)
                .ok_or_else(|| de::Error::custom(format!("{name:?} is not a feature")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: WitName + fmt::Debug>() {
        assert_eq!(T::CASES.len(), T::NAMES.len());
        for case in T::CASES {
            assert_eq!(T::from_name(case.name()), Some(*case), "{case:?}");
        }
        assert_eq!(T::from_name("no-such-name"), None);
    }

    #[test]
    fn every_table_round_trips() {
        round_trip::<Cloud>();
        round_trip::<SyncMode>();
        round_trip::<Attribute>();
        round_trip::<MatchKey>();
        round_trip::<RemovalPolicy>();
        round_trip::<DataSet>();
        round_trip::<AuthFailure>();
        round_trip::<PersonStatus>();
        round_trip::<UpsertKind>();
        round_trip::<MatchState>();
        round_trip::<Level>();
        for (flag, name) in FEATURES {
            assert_eq!(feature_from_name(name), Some(*flag));
        }
    }
}
