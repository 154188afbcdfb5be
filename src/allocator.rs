//! The heap of the static musl builds (the router binaries): power-of-two size classes
//! carved from 64 KiB slabs, blocks above 32 KiB straight from mmap.
//!
//! zig's libc brings a multi-threaded slab allocator (per-CPU caches, CPU counting)
//! that was about 8 KB of the mips binary; dproxy runs one thread. This heap has the
//! same shape (power-of-two classes, freed blocks kept on a free list per class, large
//! blocks returned to the kernel at once), so memory use stays the same. It serves
//! Rust (`#[global_allocator]`) and, through the C names, musl's own calls, so no
//! pointer ever crosses two heaps: every allocation entry point of zig's libc (weak
//! symbols there) is defined here. A spin lock keeps it correct for the threads of
//! the unit tests; the daemon never contends for it. Host builds keep the system
//! heap and run the tests below against this one directly.
#![cfg_attr(not(target_env = "musl"), allow(dead_code))]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

const MIN_SHIFT: u32 = 4;
const MAX_SHIFT: u32 = 15;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
const SLAB: usize = 64 * 1024;
const PAGE: usize = 4096;
/// In front of every block handed to C: its total size and its distance from the
/// block's start (16 bytes keeps C's alignment).
const HEADER: usize = 16;

struct State {
    free: [*mut u8; CLASSES],
    next: [*mut u8; CLASSES],
    end: [*mut u8; CLASSES],
}

struct Heap {
    lock: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap::new();

/// The size class of a block of `size` bytes aligned to `align`, or None for a large one.
fn class(size: usize, align: usize) -> Option<usize> {
    let n = size.max(align).max(1 << MIN_SHIFT);
    if n > 1 << MAX_SHIFT {
        return None;
    }
    Some((n.next_power_of_two().trailing_zeros() - MIN_SHIFT) as usize)
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping, no pointer given in.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

fn round_page(n: usize) -> Option<usize> {
    n.checked_add(PAGE - 1).map(|n| n & !(PAGE - 1))
}

impl Heap {
    const fn new() -> Heap {
        Heap {
            lock: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                free: [null_mut(); CLASSES],
                next: [null_mut(); CLASSES],
                end: [null_mut(); CLASSES],
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held until after f returns.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    fn alloc_block(&self, size: usize, align: usize) -> *mut u8 {
        // Slabs and mappings are page-aligned; nothing in dproxy asks for more.
        if align > PAGE {
            return null_mut();
        }
        let Some(c) = class(size, align) else {
            return match round_page(size) {
                Some(len) => map(len),
                None => null_mut(),
            };
        };
        let block = 1usize << (c as u32 + MIN_SHIFT);
        self.with(|s| {
            let head = s.free[c];
            if !head.is_null() {
                // SAFETY: a free block holds the address of the next free one.
                s.free[c] = unsafe { head.cast::<*mut u8>().read() };
                return head;
            }
            if s.next[c] == s.end[c] {
                let slab = map(SLAB);
                if slab.is_null() {
                    return null_mut();
                }
                s.next[c] = slab;
                // SAFETY: within the mapping just made.
                s.end[c] = unsafe { slab.add(SLAB) };
            }
            let p = s.next[c];
            // SAFETY: SLAB is a multiple of every block size, so p + block <= end.
            s.next[c] = unsafe { p.add(block) };
            p
        })
    }

    /// # Safety
    /// `p` came from `alloc_block` with the same size and alignment.
    unsafe fn free_block(&self, p: *mut u8, size: usize, align: usize) {
        match class(size, align) {
            Some(c) => self.with(|s| {
                p.cast::<*mut u8>().write(s.free[c]);
                s.free[c] = p;
            }),
            None => {
                if let Some(len) = round_page(size) {
                    libc::munmap(p.cast(), len);
                }
            }
        }
    }
}

struct Global;

// SAFETY: blocks are never shared between two live allocations; every block is at
// least `align` aligned (power-of-two blocks in page-aligned slabs).
unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HEAP.alloc_block(l.size(), l.align())
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HEAP.free_block(p, l.size(), l.align())
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if class(l.size(), l.align()).is_some_and(|c| class(new, l.align()) == Some(c)) {
            return p;
        }
        let q = HEAP.alloc_block(new, l.align());
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new));
            HEAP.free_block(p, l.size(), l.align());
        }
        q
    }
}

#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: Global = Global;

/// A C block of `n` usable bytes aligned to `align` (a power of two; 16 at least).
fn c_alloc(n: usize, align: usize) -> *mut c_void {
    let extra = if align > HEADER { align } else { 0 };
    let Some(want) = n.checked_add(HEADER + extra) else {
        return null_mut();
    };
    // The header records the whole block, so realloc can grow into it in place.
    let total = match class(want, HEADER) {
        Some(c) => 1 << (c as u32 + MIN_SHIFT),
        None => match round_page(want) {
            Some(len) => len,
            None => return null_mut(),
        },
    };
    let p = HEAP.alloc_block(total, HEADER);
    if p.is_null() {
        return null_mut();
    }
    let off = HEADER + (align - (p as usize + HEADER) % align) % align;
    // SAFETY: off + n <= want <= total, and the header sits inside the block, before
    // the part handed out.
    unsafe {
        let q = p.add(off);
        q.sub(HEADER).cast::<[usize; 2]>().write([total, off]);
        q.cast()
    }
}

/// # Safety
/// `q` came from `c_alloc` and is live.
unsafe fn c_header(q: *mut c_void) -> (*mut u8, usize, usize) {
    let [total, off] = q.cast::<u8>().sub(HEADER).cast::<[usize; 2]>().read();
    (q.cast::<u8>().sub(off), total, off)
}

/// # Safety
/// C's `malloc`.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
    c_alloc(n, HEADER)
}

/// # Safety
/// C's `free`: `q` is null or a live block of these functions.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn free(q: *mut c_void) {
    if q.is_null() {
        return;
    }
    let (p, total, _) = c_header(q);
    HEAP.free_block(p, total, HEADER);
}

/// # Safety
/// C's `calloc`.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    let Some(n) = count.checked_mul(size) else {
        return null_mut();
    };
    let q = c_alloc(n, HEADER);
    if !q.is_null() {
        q.cast::<u8>().write_bytes(0, n);
    }
    q
}

/// # Safety
/// C's `realloc`: `q` is null or a live block of these functions.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn realloc(q: *mut c_void, n: usize) -> *mut c_void {
    if q.is_null() {
        return c_alloc(n, HEADER);
    }
    let (_, total, off) = c_header(q);
    let usable = total - off;
    // In place while it fits and at least half the block stays in use.
    if n <= usable && n >= usable / 2 {
        return q;
    }
    let r = c_alloc(n, HEADER);
    if !r.is_null() {
        std::ptr::copy_nonoverlapping(q.cast::<u8>(), r.cast::<u8>(), usable.min(n));
        free(q);
    }
    r
}

/// # Safety
/// C's `aligned_alloc`.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return null_mut();
    }
    c_alloc(n, align)
}

/// # Safety
/// C's `memalign`.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    aligned_alloc(align, n)
}

/// # Safety
/// C's `posix_memalign`: `out` is writable.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> i32 {
    if !align.is_power_of_two() || align % std::mem::size_of::<usize>() != 0 {
        return libc::EINVAL;
    }
    let q = c_alloc(n, align);
    if q.is_null() {
        return libc::ENOMEM;
    }
    out.write(q);
    0
}

/// # Safety
/// C's `reallocarray`: `q` is null or a live block of these functions.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn reallocarray(q: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(n) => realloc(q, n),
        None => null_mut(),
    }
}

/// # Safety
/// C's `valloc`.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn valloc(n: usize) -> *mut c_void {
    c_alloc(n, PAGE)
}

/// # Safety
/// C's `malloc_usable_size`.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(q: *mut c_void) -> usize {
    if q.is_null() {
        return 0;
    }
    let (_, total, off) = c_header(q);
    total - off
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(p: *mut u8, n: usize, seed: u8) {
        for i in 0..n {
            // SAFETY: p holds n bytes.
            unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
        }
    }

    fn check(p: *const u8, n: usize, seed: u8) -> bool {
        // SAFETY: p holds n bytes.
        (0..n).all(|i| unsafe { p.add(i).read() } == seed.wrapping_add(i as u8))
    }

    #[test]
    fn rust_blocks_are_aligned_disjoint_and_reused() {
        let sizes = [
            1, 7, 16, 17, 100, 512, 4000, 4096, 5000, 32768, 32769, 200_000,
        ];
        let mut live = Vec::new();
        for (k, &n) in sizes.iter().enumerate() {
            for align in [1, 8, 16, 64, 4096] {
                let l = Layout::from_size_align(n, align).unwrap();
                // SAFETY: a non-zero layout.
                let p = unsafe { GlobalAlloc::alloc(&Global, l) };
                assert!(!p.is_null() && p as usize % align == 0, "{n} {align}");
                fill(p, n, k as u8);
                live.push((p, l, k as u8));
            }
        }
        for &(p, l, seed) in &live {
            assert!(check(p, l.size(), seed), "{l:?} overwritten");
        }
        for (p, l, _) in live {
            // SAFETY: each block is live with its layout.
            unsafe { GlobalAlloc::dealloc(&Global, p, l) };
        }
    }

    #[test]
    fn rust_realloc_keeps_the_contents() {
        let l = Layout::from_size_align(10, 8).unwrap();
        // SAFETY: sizes are non-zero, the pointer is always the live one.
        unsafe {
            let mut p = GlobalAlloc::alloc(&Global, l);
            fill(p, 10, 3);
            let mut size = 10;
            for new in [12, 40, 3000, 70_000, 300_000, 20, 9] {
                p = GlobalAlloc::realloc(
                    &Global,
                    p,
                    Layout::from_size_align(size, 8).unwrap(),
                    new,
                );
                assert!(!p.is_null());
                assert!(check(p, size.min(new).min(10), 3), "to {new}");
                size = new;
            }
            GlobalAlloc::dealloc(&Global, p, Layout::from_size_align(size, 8).unwrap());
        }
    }

    #[test]
    fn c_functions_keep_contents_and_alignment() {
        // SAFETY: C allocator calls on blocks of these functions only.
        unsafe {
            let mut p = malloc(5).cast::<u8>();
            assert!(!p.is_null() && p as usize % 16 == 0);
            fill(p, 5, 9);
            let mut n = 5;
            for new in [6, 17, 1000, 40_000, 1 << 20, 33, 0] {
                p = realloc(p.cast(), new).cast();
                assert!(!p.is_null() && p as usize % 16 == 0, "to {new}");
                assert!(malloc_usable_size(p.cast()) >= new);
                assert!(check(p, n.min(new).min(5), 9), "to {new}");
                n = new;
            }
            free(p.cast());
            free(null_mut());
            let z = calloc(100, 7).cast::<u8>();
            assert!((0..700).all(|i| z.add(i).read() == 0));
            free(z.cast());
            // black_box: an optimiser that knows these names may drop an allocation
            // whose result is only compared with null, and fold the comparison.
            let (huge, big) = std::hint::black_box((usize::MAX, usize::MAX - 8));
            assert!(std::hint::black_box(calloc(huge, 2)).is_null());
            assert!(std::hint::black_box(malloc(big)).is_null());
            for align in [8, 16, 32, 256, 4096, 16384] {
                let mut out = null_mut();
                assert_eq!(posix_memalign(&mut out, align, 100), 0);
                assert_eq!(out as usize % align, 0, "{align}");
                fill(out.cast(), 100, 1);
                let q = aligned_alloc(align, 3);
                assert_eq!(q as usize % align, 0);
                assert!(check(out.cast(), 100, 1));
                free(out);
                free(q);
            }
            let mut out = null_mut();
            assert_eq!(posix_memalign(&mut out, 24, 1), libc::EINVAL);
            assert!(reallocarray(null_mut(), usize::MAX, 2).is_null());
            let r = reallocarray(null_mut(), 10, 10).cast::<u8>();
            fill(r, 100, 4);
            let r = reallocarray(r.cast(), 20, 100).cast::<u8>();
            assert!(check(r, 100, 4));
            free(r.cast());
            let v = valloc(10);
            assert_eq!(v as usize % PAGE, 0);
            free(v);
        }
    }

    #[test]
    fn freed_memory_is_reused_not_grown() {
        // A heap of its own: other tests' threads use the global one.
        let h = Heap::new();
        let a = h.alloc_block(300, 8);
        let b = h.alloc_block(300, 8);
        assert_eq!(b as usize - a as usize, 512, "one class, carved in a row");
        // SAFETY: each block is freed once, with its size.
        unsafe { h.free_block(a, 300, 8) };
        for _ in 0..10_000 {
            let p = h.alloc_block(260, 16);
            assert_eq!(p, a, "a freed block of the same class comes back");
            unsafe { h.free_block(p, 260, 16) };
        }
        let big = h.alloc_block(100_000, 8);
        assert!(!big.is_null() && big as usize % PAGE == 0);
        // SAFETY: live blocks of this heap, freed once.
        unsafe {
            h.free_block(big, 100_000, 8);
            h.free_block(b, 300, 8);
        }
        // A fresh heap carves 128 blocks of 512 bytes from one slab in a row.
        let h = Heap::new();
        let blocks: Vec<*mut u8> = (0..129).map(|_| h.alloc_block(512, 8)).collect();
        assert_eq!(blocks[127] as usize - blocks[0] as usize, 127 * 512);
        assert!(blocks.iter().all(|p| !p.is_null()));
    }
}
