//! The C library functions that libaom and libwebp call, for wasm32, where a Worker has no C
//! library: `malloc`, `calloc`, `realloc` and `free` on Rust's allocator, and `qsort` on Rust's
//! sort. (The math and `mem*` functions come with Rust's own runtime; the rest, which libaom
//! refers to but never calls in a Worker, are in `imaging/wasm32/libc.c`.) They take the C names on wasm32 only:
//! elsewhere the system's C library provides them, and these are compiled for the tests alone.
#![allow(unsafe_code)]

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// The alignment C's `malloc` guarantees on wasm32 (that of `max_align_t`), and the size of the
/// header before each block, which remembers the block's size for `free`.
const ALIGN: usize = 16;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(ALIGN)?, ALIGN).ok()
}

/// # Safety
/// As C's `malloc` (with `zeroed`, `calloc`).
unsafe fn allocate(size: usize, zeroed: bool) -> *mut c_void {
    let Some(layout) = layout(size) else {
        return null_mut();
    };
    // SAFETY: the layout is never zero-sized (it includes the header); the header is aligned
    // for a usize and the block after it keeps the layout's alignment.
    unsafe {
        let base = if zeroed {
            alloc_zeroed(layout)
        } else {
            alloc(layout)
        };
        if base.is_null() {
            return null_mut();
        }
        base.cast::<usize>().write(size);
        base.add(ALIGN).cast()
    }
}

/// C's `malloc`.
///
/// # Safety
/// As C's `malloc`.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: as the caller's.
    unsafe { allocate(size, false) }
}

/// C's `calloc`: `count` × `size` zeroed bytes, or null when that overflows.
///
/// # Safety
/// As C's `calloc`.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: as the caller's.
        Some(total) => unsafe { allocate(total, true) },
        None => null_mut(),
    }
}

/// C's `free`.
///
/// # Safety
/// `block` is null or came from [`malloc`] or [`calloc`] and was not freed yet.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn free(block: *mut c_void) {
    if block.is_null() {
        return;
    }
    // SAFETY: `block` follows a header written by `allocate`, holding the size it was asked
    // for, so the layout is the one it was allocated with.
    unsafe {
        let base = block.cast::<u8>().sub(ALIGN);
        let size = base.cast::<usize>().read();
        dealloc(base, Layout::from_size_align_unchecked(size + ALIGN, ALIGN));
    }
}

/// C's `realloc`: `block` resized to `size` bytes, its contents kept; null (and `block`
/// untouched) when that fails.
///
/// # Safety
/// `block` is null or came from [`malloc`], [`calloc`] or `realloc` and was not freed yet.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn realloc(block: *mut c_void, size: usize) -> *mut c_void {
    if block.is_null() {
        // SAFETY: as the caller's.
        return unsafe { malloc(size) };
    }
    let Some(new_layout) = layout(size) else {
        return null_mut();
    };
    // SAFETY: as in `free`: the header gives the block's layout; std's realloc keeps the
    // header and the contents, and the new header records the new size.
    unsafe {
        let base = block.cast::<u8>().sub(ALIGN);
        let old = Layout::from_size_align_unchecked(base.cast::<usize>().read() + ALIGN, ALIGN);
        let moved = std::alloc::realloc(base, old, new_layout.size());
        if moved.is_null() {
            return null_mut();
        }
        moved.cast::<usize>().write(size);
        moved.add(ALIGN).cast()
    }
}

/// C's `qsort`: sorts `count` elements of `size` bytes at `base` by `compare`.
///
/// # Safety
/// As C's `qsort`: `base` holds `count` × `size` bytes and `compare` is a total order.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn qsort(
    base: *mut c_void,
    count: usize,
    size: usize,
    compare: unsafe extern "C" fn(*const c_void, *const c_void) -> c_int,
) {
    if count < 2 || size == 0 {
        return;
    }
    let base = base.cast::<u8>();
    // SAFETY: every element lies inside the `count` × `size` bytes at `base`; the sorted copy
    // is written back over them, element by element, from a separate buffer.
    unsafe {
        let element = |index: usize| base.add(index * size).cast_const().cast::<c_void>();
        let mut order: Vec<usize> = (0..count).collect();
        order.sort_by(|&a, &b| compare(element(a), element(b)).cmp(&0));
        let original = std::slice::from_raw_parts(base, count * size).to_vec();
        for (slot, &from) in order.iter().enumerate() {
            std::ptr::copy_nonoverlapping(
                original.as_ptr().add(from * size),
                base.add(slot * size),
                size,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_sized_and_zeroed_when_asked() {
        // SAFETY: each block is used within its size and freed once.
        unsafe {
            let zeroed = calloc(1000, 3).cast::<u8>();
            assert!(!zeroed.is_null());
            assert_eq!(zeroed as usize % ALIGN, 0);
            assert!(std::slice::from_raw_parts(zeroed, 3000)
                .iter()
                .all(|&b| b == 0));
            let block = malloc(17).cast::<u8>();
            assert_eq!(block as usize % ALIGN, 0);
            block.write_bytes(0xAB, 17);
            let grown = realloc(block.cast(), 5000).cast::<u8>();
            assert_eq!(grown as usize % ALIGN, 0);
            assert!(std::slice::from_raw_parts(grown, 17)
                .iter()
                .all(|&b| b == 0xAB));
            grown.add(4999).write(1);
            let shrunk = realloc(grown.cast(), 3).cast::<u8>();
            assert_eq!(std::slice::from_raw_parts(shrunk, 3), [0xAB; 3]);
            free(shrunk.cast());
            free(realloc(null_mut(), 8));
            free(zeroed.cast());
            free(null_mut());
            assert!(calloc(usize::MAX, 2).is_null(), "overflow gives null");
            assert!(malloc(usize::MAX).is_null());
        }
    }

    unsafe extern "C" fn by_value(a: *const c_void, b: *const c_void) -> c_int {
        // SAFETY: qsort passes pointers to two of the u32 elements.
        let (a, b) = unsafe { (a.cast::<u32>().read(), b.cast::<u32>().read()) };
        a.cmp(&b) as c_int
    }

    #[test]
    fn qsort_sorts_elements_of_any_size() {
        let mut values: Vec<u32> = (0..500u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 1000)
            .collect();
        let mut expected = values.clone();
        expected.sort_unstable();
        // SAFETY: `values` holds `len` u32 elements.
        unsafe { qsort(values.as_mut_ptr().cast(), values.len(), 4, by_value) };
        assert_eq!(values, expected);
        // Pairs of u32, ordered by their first half: the second half moves with it.
        let mut pairs: Vec<[u32; 2]> = vec![[3, 30], [1, 10], [2, 20]];
        // SAFETY: `pairs` holds 3 elements of 8 bytes, each starting with its u32 key.
        unsafe { qsort(pairs.as_mut_ptr().cast(), 3, 8, by_value) };
        assert_eq!(pairs, [[1, 10], [2, 20], [3, 30]]);
    }
}
