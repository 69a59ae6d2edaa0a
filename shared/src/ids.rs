//! Identifier types. On the wire every id is a JSON string: user and group ids
//! are decimal integers in a string (`"42"`), message ids are UUIDv7 strings.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A message id: a UUIDv7 assigned by the relay. Version 7 UUIDs start with
/// a millisecond timestamp, so ids sort by the time the relay stored them.
pub type MsgId = uuid::Uuid;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = String;
            /// Only plain positive decimals are ids: no sign, no spaces, no
            /// leading zeros, no exponent, nothing above `i64::MAX`.
            fn from_str(s: &str) -> Result<Self, String> {
                let valid = !s.is_empty()
                    && s.len() <= 19
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && !s.starts_with('0');
                match s.parse::<i64>() {
                    Ok(v) if valid => Ok($name(v)),
                    _ => Err(format!(concat!("not a valid ", $what, ": {:?}"), s)),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", $what, " as a string of digits"))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

numeric_id!(
    /// A user id, assigned at registration.
    UserId,
    "user id"
);
numeric_id!(
    /// A group id, assigned when the group is created.
    GroupId,
    "group id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strings_on_the_wire() {
        assert_eq!(serde_json::to_string(&UserId(42)).unwrap(), "\"42\"");
        let id: UserId = serde_json::from_str("\"7\"").unwrap();
        assert_eq!(id, UserId(7));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "\"\"",
            "\"0\"",
            "\"-1\"",
            "\"+1\"",
            "\"01\"",
            "\"1e3\"",
            "\" 1\"",
            "\"99999999999999999999\"",
            "\"9223372036854775808\"",
            "3",
            "null",
        ] {
            assert!(
                serde_json::from_str::<UserId>(bad).is_err(),
                "{bad} accepted"
            );
        }
        assert_eq!(
            "9223372036854775807".parse::<UserId>().unwrap(),
            UserId(i64::MAX)
        );
    }
}
