//! Progress bars on a terminal, and Ctrl-C as cancellation.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use fzip_engine::{CancelFlag, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows engine progress on stderr, when stderr is a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
    cancel: Arc<CancelFlag>,
}

impl Bar {
    pub fn new(enabled: bool, cancel: Arc<CancelFlag>) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Bar { bar, cancel }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        tracing::debug!(phase = name, total, "phase");
        let Some(bar) = &self.bar else { return };
        let label = name.replace('_', " ");
        let style = if total > 0 {
            ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {pos}/{len} ({eta})")
        } else {
            ProgressStyle::with_template("{spinner} {msg:<28} {pos}")
        };
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_length(total);
        bar.set_position(0);
        bar.set_message(label);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_set()
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
