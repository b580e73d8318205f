//! The hand-over between two stage threads, one sender and one receiver. Files use a bounded queue
//! whose sender waits while it is full, so every frame arrives (lossless back-pressure). Live sources
//! use a one-slot mailbox: a newer item replaces the one still waiting and is never blocked, so the
//! receiver always gets the newest frame instead of one that waited behind a busy stage.
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The sending end; dropping it ends the receiver's iteration once the waiting items are taken.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving end; dropping it makes every later `send` fail.
pub struct Receiver<T>(Arc<Shared<T>>);

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled on every change: an item in or out, an end dropped.
    changed: Condvar,
    capacity: usize,
    /// Full: replace the oldest waiting item (mailbox) rather than wait for room (queue).
    replace: bool,
}

struct State<T> {
    items: VecDeque<T>,
    sender: bool,
    receiver: bool,
}

/// A queue of up to `capacity` items (at least 1) whose sender waits while it is full.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    pair(capacity.max(1), false)
}

/// A one-slot mailbox: sending never waits, a newer item replaces the one waiting.
pub fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    pair(1, true)
}

fn pair<T>(capacity: usize, replace: bool) -> (Sender<T>, Receiver<T>) {
    let state = State { items: VecDeque::with_capacity(capacity), sender: true, receiver: true };
    let shared = Arc::new(Shared { state: Mutex::new(state), changed: Condvar::new(), capacity, replace });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The state is consistent after any panic (every change is one push or pop).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        self.changed.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Sender<T> {
    /// Hands `item` over. `Ok(Some(older))`: a mailbox replaced `older`, which was never received
    /// (the caller counts it as dropped). `Err(item)`: the receiver is gone.
    pub fn send(&self, item: T) -> Result<Option<T>, T> {
        let shared = &self.0;
        let mut state = shared.lock();
        while state.receiver && state.items.len() == shared.capacity && !shared.replace {
            state = shared.wait(state);
        }
        if !state.receiver {
            return Err(item);
        }
        let older = if state.items.len() == shared.capacity { state.items.pop_front() } else { None };
        state.items.push_back(item);
        shared.changed.notify_all();
        Ok(older)
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; `None` once the sender is gone and nothing waits.
    pub fn recv(&self) -> Option<T> {
        let shared = &self.0;
        let mut state = shared.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                shared.changed.notify_all();
                return Some(item);
            }
            if !state.sender {
                return None;
            }
            state = shared.wait(state);
        }
    }
}

impl<T> Iterator for Receiver<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender = false;
        self.0.changed.notify_all();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receiver = false;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_mailbox_never_waits_and_keeps_the_newest() {
        let (tx, rx) = mailbox();
        assert_eq!(tx.send(1), Ok(None));
        assert_eq!(tx.send(2), Ok(Some(1)), "the older item comes back to be counted");
        assert_eq!(tx.send(3), Ok(Some(2)));
        assert_eq!(rx.recv(), Some(3));
        assert_eq!(tx.send(4), Ok(None), "the slot was emptied by the receiver");
        drop(tx);
        assert_eq!(rx.recv(), Some(4), "what waits is still delivered after the sender ends");
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn a_queue_delivers_everything_in_order_with_back_pressure() {
        let (tx, rx) = bounded(2);
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                assert_eq!(tx.send(i), Ok(None), "a queue never replaces");
            }
        });
        // A slow receiver: the sender must wait rather than drop.
        let got: Vec<i32> = rx
            .inspect(|i| {
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
            .collect();
        sender.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn sending_fails_once_the_receiver_is_gone_even_while_waiting() {
        let (tx, rx) = bounded(1);
        tx.send(1).unwrap();
        let sender = std::thread::spawn(move || tx.send(2));
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
        assert_eq!(sender.join().unwrap(), Err(2), "the waiting sender is woken and gets its item back");
        let (tx, rx) = mailbox::<u8>();
        drop(rx);
        assert_eq!(tx.send(1), Err(1));
    }
}
