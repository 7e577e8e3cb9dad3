//! `Slot`: a request field that records "absent", "present with the right type" or "wrong type".

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One field of a request as it was found in the frame.
///
/// Deserializing a `Slot` never fails on a type mismatch: it swallows the value and records
/// `Wrong`, so the parser can name the offending field instead of passing on serde's
/// positional message. Only malformed JSON makes the whole parse fail.
#[derive(Debug, Default)]
pub(crate) enum Slot<T> {
    #[default]
    Absent,
    Got(T),
    Wrong,
}

/// The content of a string field that only has to *be* a string (`msg`, `time`): the
/// server forwards the whole frame, so copying the text out would be wasted work.
#[derive(Debug)]
pub(crate) struct StrSeen;

/// What a slot of type `Self` makes of each kind of JSON scalar; anything else is `Wrong`.
pub(crate) trait Pick<'de>: Sized {
    fn int(_v: i64) -> Slot<Self> {
        Slot::Wrong
    }
    fn boolean(_v: bool) -> Slot<Self> {
        Slot::Wrong
    }
    /// A string borrowed straight from the frame (it had no escapes).
    fn borrowed_str(_v: &'de str) -> Slot<Self> {
        Slot::Wrong
    }
    /// A string unescaped into a scratch buffer that dies after this call.
    fn transient_str(_v: &str) -> Slot<Self> {
        Slot::Wrong
    }
}

impl Pick<'_> for i64 {
    fn int(v: i64) -> Slot<Self> {
        Slot::Got(v)
    }
}

impl Pick<'_> for bool {
    fn boolean(v: bool) -> Slot<Self> {
        Slot::Got(v)
    }
}

impl<'de: 'a, 'a> Pick<'de> for Cow<'a, str> {
    fn borrowed_str(v: &'de str) -> Slot<Self> {
        Slot::Got(Cow::Borrowed(v))
    }
    fn transient_str(v: &str) -> Slot<Self> {
        Slot::Got(Cow::Owned(v.to_owned()))
    }
}

impl Pick<'_> for StrSeen {
    fn borrowed_str(_v: &str) -> Slot<Self> {
        Slot::Got(StrSeen)
    }
    fn transient_str(_v: &str) -> Slot<Self> {
        Slot::Got(StrSeen)
    }
}

impl<'de, T: Pick<'de>> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SlotVisitor(PhantomData))
    }
}

struct SlotVisitor<T>(PhantomData<T>);

impl<'de, T: Pick<'de>> Visitor<'de> for SlotVisitor<T> {
    type Value = Slot<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        // Above i64::MAX it cannot be an id of ours: a wrong value, not malformed JSON.
        Ok(i64::try_from(v).map_or(Slot::Wrong, T::int))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(Slot::Wrong)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(T::boolean(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Slot::Wrong)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(T::borrowed_str(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::transient_str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Drain it so the rest of the object still parses.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Slot::Wrong)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Slot::Wrong)
    }
}
