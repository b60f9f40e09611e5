//! Element types of `Value` and `Array`: each is stored in one 64-bit atomic cell as its bits.

mod sealed {
    pub trait Sealed {}
}

/// A type that `Value` and `Array` can hold: the integers `i8..=i64`, `u8..=u64`, `f32`, `f64` and
/// `bool`. Each is stored in a 64-bit atomic cell as its bits (floats by their IEEE bits), so every
/// operation is a single atomic instruction or a compare-exchange loop on that cell.
pub trait Atom:
    sealed::Sealed + Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static
{
    /// The canonical 64-bit encoding.
    #[doc(hidden)]
    fn to_bits(self) -> u64;
    /// Decodes a cell (only the low bits of the type's width are read).
    #[doc(hidden)]
    fn from_bits(b: u64) -> Self;
}

/// An [`Atom`] with arithmetic: every integer type (wrapping) and the floats (IEEE).
pub trait AtomNum: Atom {
    /// True where adding the 64-bit encodings adds the values (64-bit integers): one `lock xadd`.
    #[doc(hidden)]
    const NATIVE_ADD: bool;
    /// `self + rhs`, wrapping for integers.
    #[doc(hidden)]
    fn add(self, rhs: Self) -> Self;
    /// `self - rhs`, wrapping for integers.
    #[doc(hidden)]
    fn sub(self, rhs: Self) -> Self;
}

macro_rules! int_atom {
    ($($t:ty => $u:ty, $native:expr);*) => {$(
        impl sealed::Sealed for $t {}
        impl Atom for $t {
            #[inline]
            fn to_bits(self) -> u64 { self as $u as u64 }
            #[inline]
            fn from_bits(b: u64) -> Self { b as $u as $t }
        }
        impl AtomNum for $t {
            const NATIVE_ADD: bool = $native;
            #[inline]
            fn add(self, rhs: Self) -> Self { self.wrapping_add(rhs) }
            #[inline]
            fn sub(self, rhs: Self) -> Self { self.wrapping_sub(rhs) }
        }
    )*};
}

int_atom!(
    i8 => u8, false; i16 => u16, false; i32 => u32, false; i64 => u64, true;
    u8 => u8, false; u16 => u16, false; u32 => u32, false; u64 => u64, true
);

/// Floats are stored as their IEEE bits (`$bits` wide), zero-extended to 64.
macro_rules! float_atom {
    ($($t:ty => $bits:ty);*) => {$(
        impl sealed::Sealed for $t {}
        impl Atom for $t {
            #[inline]
            fn to_bits(self) -> u64 { <$t>::to_bits(self) as u64 }
            #[inline]
            fn from_bits(b: u64) -> Self { <$t>::from_bits(b as $bits) }
        }
        impl AtomNum for $t {
            const NATIVE_ADD: bool = false;
            #[inline]
            fn add(self, rhs: Self) -> Self { self + rhs }
            #[inline]
            fn sub(self, rhs: Self) -> Self { self - rhs }
        }
    )*};
}

float_atom!(f32 => u32; f64 => u64);

impl sealed::Sealed for bool {}
impl Atom for bool {
    #[inline]
    fn to_bits(self) -> u64 {
        self as u64
    }
    #[inline]
    fn from_bits(b: u64) -> Self {
        b & 1 != 0
    }
}
