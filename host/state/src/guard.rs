//! Turning a panic inside redb into an error.
//!
//! redb trusts the bytes of a file whose header is valid: a damaged page behind it makes redb
//! panic (`unreachable!`, out-of-range indexing) instead of returning an error. Where the store
//! opens a file, such a panic means "this file is corrupt", which the caller must be able to
//! report as an error naming the file, without a panic report on stderr.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// How many [`catch`] calls are running on this thread: their panics are not reported.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// Where the last caught panic happened, recorded by the hook (the payload has no location).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic in it becomes `Err` with the panic's message and location, and is not
/// printed. Panics elsewhere (other threads, or outside `f`) are reported as before.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    CATCHING.with(|c| c.set(c.get().saturating_add(1)));
    let result = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    result.map_err(|payload| {
        let message = message_of(payload.as_ref());
        match LOCATION.with(|l| l.borrow_mut().take()) {
            Some(at) => format!("{message} (at {at})"),
            None => message,
        }
    })
}

/// Installs, once per process, a hook that stays silent inside [`catch`] and otherwise defers
/// to the hook that was there before.
fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) > 0 {
                // From the crate's folder on (`redb-4.6.0/src/…`): the registry path is noise.
                let at = info.location().map(|l| {
                    let file = l.file();
                    let short = file.find("redb-").and_then(|i| file.get(i..)).unwrap_or(file);
                    format!("{short}:{}", l.line())
                });
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::catch;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let err = catch(|| -> u8 { panic!("bad page {}", 7) }).expect_err("panicked");
        assert!(err.starts_with("bad page 7 (at "), "{err}");
        assert!(err.contains("guard.rs"), "{err}");
        assert_eq!(catch(|| 5), Ok(5));
    }
}
