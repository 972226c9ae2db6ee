//! Little-endian field codec shared by the ZNP command modules.
//!
//! Each MT message is a struct implementing [`Msg`]; the [`msg!`] macro
//! writes the field-by-field `write`/`read` so that every command file is a
//! table of facts (ids and field layouts), not code. Reading never panics:
//! a short payload is a [`PayloadError`] naming the missing field.

use super::frame::{CmdType, Frame};

/// Why a frame's data is not the message it claims to be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("{msg}: field `{field}` needs {needed} more byte(s)")]
    Short {
        msg: &'static str,
        field: &'static str,
        needed: usize,
    },
    #[error("{msg}: field `{field}` has invalid value {value:#x}")]
    Invalid {
        msg: &'static str,
        field: &'static str,
        value: u64,
    },
    #[error("frame {got:02x}:{cmd:02x} is not {msg}")]
    WrongCommand { msg: &'static str, got: u8, cmd: u8 },
}

/// A cursor over a payload.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pub msg: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], msg: &'static str) -> Self {
        Reader { buf, msg }
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PayloadError> {
        if self.buf.len() < n {
            return Err(PayloadError::Short {
                msg: self.msg,
                field,
                needed: n - self.buf.len(),
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn uint(&mut self, n: usize, field: &'static str) -> Result<u64, PayloadError> {
        let b = self.take(n, field)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x)))
    }
}

/// One field type on the wire.
pub trait Field: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError>;
}

macro_rules! uint_field {
    ($t:ty, $n:literal) => {
        impl Field for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
                // The value has exactly $n bytes, so the cast is lossless.
                Ok(r.uint($n, field)? as $t)
            }
        }
    };
}
uint_field!(u8, 1);
uint_field!(u16, 2);
uint_field!(u32, 4);
uint_field!(u64, 8);

/// `Vec<u8>` on the wire: a one-byte length, then the bytes.
impl Field for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        let n = self.len().min(255);
        out.push(n as u8);
        out.extend_from_slice(&self[..n]);
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
        let n = usize::from(u8::get(r, field)?);
        Ok(r.take(n, field)?.to_vec())
    }
}

/// `Vec<u16>` on the wire: a one-byte count, then little-endian u16s.
impl Field for Vec<u16> {
    fn put(&self, out: &mut Vec<u8>) {
        let n = self.len().min(255);
        out.push(n as u8);
        for v in &self[..n] {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
        let n = usize::from(u8::get(r, field)?);
        (0..n).map(|_| u16::get(r, field)).collect()
    }
}

/// Trailing optional field: absent when the payload ends before it
/// (older Z-Stack versions omit some trailing fields).
impl<T: Field> Field for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        if let Some(v) = self {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
        if r.is_empty() {
            Ok(None)
        } else {
            T::get(r, field).map(Some)
        }
    }
}

/// An MT message with a fixed type, subsystem and command id.
pub trait Msg: Sized {
    const NAME: &'static str;
    const TYPE: CmdType;
    const SUBSYSTEM: u8;
    const CMD: u8;
    fn write(&self, out: &mut Vec<u8>);
    fn read(r: &mut Reader<'_>) -> Result<Self, PayloadError>;

    fn to_frame(&self) -> Frame {
        let mut data = Vec::new();
        self.write(&mut data);
        Frame::new(Self::TYPE, Self::SUBSYSTEM, Self::CMD, data)
    }
    /// Does `f` carry this message (type, subsystem and command match)?
    fn matches(f: &Frame) -> bool {
        f.ty == Self::TYPE && f.subsystem == Self::SUBSYSTEM && f.cmd == Self::CMD
    }
    fn from_frame(f: &Frame) -> Result<Self, PayloadError> {
        if !Self::matches(f) {
            return Err(PayloadError::WrongCommand {
                msg: Self::NAME,
                got: f.subsystem,
                cmd: f.cmd,
            });
        }
        Self::parse(&f.data)
    }
    fn parse(data: &[u8]) -> Result<Self, PayloadError> {
        let mut r = Reader::new(data, Self::NAME);
        Self::read(&mut r)
    }
}

/// Declares MT message structs: `Name: TYPE SUBSYSTEM CMD { field: Type, … }`.
macro_rules! msg {
    ($(
        $(#[$m:meta])*
        $name:ident : $ty:ident $sub:ident $cmd:literal { $( $(#[$fm:meta])* $f:ident : $ft:ty ),* $(,)? }
    )*) => {$(
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Default)]
        pub struct $name { $( $(#[$fm])* pub $f: $ft, )* }

        impl $crate::zigbee::wire::Msg for $name {
            const NAME: &'static str = stringify!($name);
            const TYPE: $crate::zigbee::frame::CmdType = $crate::zigbee::frame::CmdType::$ty;
            const SUBSYSTEM: u8 = $crate::zigbee::frame::subsystem::$sub;
            const CMD: u8 = $cmd;
            #[allow(unused_variables)]
            fn write(&self, out: &mut Vec<u8>) {
                $( $crate::zigbee::wire::Field::put(&self.$f, out); )*
            }
            #[allow(unused_variables)]
            fn read(r: &mut $crate::zigbee::wire::Reader<'_>) -> Result<Self, $crate::zigbee::wire::PayloadError> {
                Ok($name { $( $f: $crate::zigbee::wire::Field::get(r, stringify!($f))?, )* })
            }
        }
    )*};
}
pub(crate) use msg;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_payload_names_the_missing_field() {
        let mut r = Reader::new(&[1, 2, 3], "Test");
        assert_eq!(u16::get(&mut r, "a").unwrap(), 0x0201);
        let e = u16::get(&mut r, "b").unwrap_err();
        assert_eq!(e.to_string(), "Test: field `b` needs 1 more byte(s)");
    }

    #[test]
    fn length_prefixed_lists_round_trip() {
        let mut out = Vec::new();
        vec![0x0006u16, 0x0500].put(&mut out);
        assert_eq!(out, [2, 0x06, 0x00, 0x00, 0x05]);
        let mut r = Reader::new(&out, "T");
        assert_eq!(Vec::<u16>::get(&mut r, "l").unwrap(), vec![6, 0x500]);
    }
}
