//! One atomic 64-bit cell holding an [`Atom`]'s bits: the core of `Value` and `Array` elements.

use super::atom::{Atom, AtomNum};
use crate::sync::{AtomicU64, Ordering};

/// Operations on a cell. All are SeqCst: these are user-visible shared variables and the
/// Python model they mirror is sequentially consistent; the cost on x86 is one `xchg` per store.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct Cell(pub(crate) AtomicU64);

impl Cell {
    crate::sync::loom_only! {
        pub(crate) fn new(bits: u64) -> Self {
            Self(AtomicU64::new(bits))
        }
    }

    #[inline]
    pub(crate) fn load<T: Atom>(&self) -> T {
        T::from_bits(self.0.load(Ordering::SeqCst))
    }

    #[inline]
    pub(crate) fn store<T: Atom>(&self, v: T) {
        self.0.store(v.to_bits(), Ordering::SeqCst)
    }

    #[inline]
    pub(crate) fn swap<T: Atom>(&self, v: T) -> T {
        T::from_bits(self.0.swap(v.to_bits(), Ordering::SeqCst))
    }

    /// Compare-exchange on the canonical encoding. Floats compare by bits (so `NaN` can match and
    /// `-0.0 != 0.0`), as `AtomicU64` on their bits would.
    #[inline]
    pub(crate) fn compare_exchange<T: Atom>(&self, current: T, new: T) -> Result<T, T> {
        self.0
            .compare_exchange(
                current.to_bits(),
                new.to_bits(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .map(T::from_bits)
            .map_err(T::from_bits)
    }

    /// Applies `f` atomically (a compare-exchange loop); returns the previous value, or `Err` with
    /// the current value if `f` returned `None`.
    #[inline]
    pub(crate) fn fetch_update<T: Atom>(&self, mut f: impl FnMut(T) -> Option<T>) -> Result<T, T> {
        let mut cur = self.0.load(Ordering::SeqCst);
        loop {
            let Some(new) = f(T::from_bits(cur)) else {
                return Err(T::from_bits(cur));
            };
            match self.0.compare_exchange_weak(
                cur,
                new.to_bits(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(prev) => return Ok(T::from_bits(prev)),
                Err(now) => cur = now,
            }
        }
    }

    /// Atomic add; returns the previous value. One `lock xadd` for 64-bit integers, a
    /// compare-exchange loop otherwise (narrow integers must wrap at their own width).
    #[inline]
    pub(crate) fn fetch_add<T: AtomNum>(&self, v: T) -> T {
        if T::NATIVE_ADD {
            return T::from_bits(self.0.fetch_add(v.to_bits(), Ordering::SeqCst));
        }
        match self.fetch_update(|x: T| Some(x.add(v))) {
            Ok(p) | Err(p) => p,
        }
    }

    /// Atomic subtract; returns the previous value.
    #[inline]
    pub(crate) fn fetch_sub<T: AtomNum>(&self, v: T) -> T {
        if T::NATIVE_ADD {
            return T::from_bits(self.0.fetch_sub(v.to_bits(), Ordering::SeqCst));
        }
        match self.fetch_update(|x: T| Some(x.sub(v))) {
            Ok(p) | Err(p) => p,
        }
    }
}
