//! Ctrl-C/SIGTERM handling for long jobs: the first signal sets a flag the job polls so it can finish
//! cleanly (finalise a video, save a checkpoint); a second one exits at once.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The process-wide interrupt flag; the first call installs the handler, which prints `what` (what
/// the job does before stopping) when the first signal arrives.
pub fn flag(what: &'static str) -> &'static AtomicBool {
    static FLAG: OnceLock<&'static AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let result = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: {what} (press Ctrl-C again to abort)");
        });
        if let Err(e) = result {
            tracing::warn!("no interrupt handler: {e}");
        }
        flag
    })
}
