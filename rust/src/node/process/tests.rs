use super::*;

fn pid() -> Pid {
    Pid {
        node: Atom::new("a@b"),
        id: 1,
        serial: 0,
        creation: 1,
    }
}

#[test]
fn spinning_stops_while_it_does_not_pay_and_is_probed_again() {
    let spinner = Spinner::new(Duration::from_micros(200));
    let looks = std::cell::Cell::new(0u32);
    let nothing = || {
        looks.set(looks.get() + 1);
        None::<()>
    };
    // The first wait spins (looks many times) and finds nothing.
    assert_eq!(spinner.spin(AfterWrite::Spin, nothing), None);
    assert!(looks.get() > 1);
    // Then it does not spin at all, until every SPIN_PROBE_EVERY-th wait.
    looks.set(0);
    for _ in 1..SPIN_PROBE_EVERY {
        assert_eq!(spinner.spin(AfterWrite::Spin, nothing), None);
    }
    assert_eq!(looks.get(), 0);
    // The probe finds something: spinning pays again, on every wait.
    assert_eq!(spinner.spin(AfterWrite::Spin, || Some(7)), Some(7));
    assert_eq!(spinner.spin(AfterWrite::Spin, || Some(8)), Some(8));
    looks.set(0);
    assert_eq!(spinner.spin(AfterWrite::Spin, nothing), None);
    assert!(looks.get() > 1);
}

#[test]
fn a_spin_after_a_write_flips_to_yielding_first_when_it_misses() {
    let spinner = Spinner::new(Duration::from_micros(50));
    let nothing = || None::<()>;
    let yields_first = |s: &Spinner| s.yield_first.load(Ordering::Relaxed);
    let skip_to_probe = |s: &Spinner| {
        while !s.is_due() {
            assert_eq!(s.spin(AfterWrite::Spin, nothing), None);
        }
    };
    // A miss after a write flips the mode; a find keeps it.
    note_write();
    assert_eq!(spinner.spin(AfterWrite::MayYield, nothing), None);
    assert!(yields_first(&spinner));
    skip_to_probe(&spinner);
    note_write();
    assert_eq!(spinner.spin(AfterWrite::MayYield, || Some(1)), Some(1));
    assert!(yields_first(&spinner));
    // `Spin` callers never flip it.
    note_write();
    assert_eq!(spinner.spin(AfterWrite::Spin, nothing), None);
    assert!(yields_first(&spinner));
    // Nor does a miss with no write since the last spin.
    skip_to_probe(&spinner);
    assert_eq!(spinner.spin(AfterWrite::MayYield, nothing), None);
    assert!(yields_first(&spinner));
    // The next miss after a write flips it back.
    skip_to_probe(&spinner);
    note_write();
    assert_eq!(spinner.spin(AfterWrite::MayYield, nothing), None);
    assert!(!yields_first(&spinner));
}

struct CountingFeed(AtomicUsize);

impl Feed for CountingFeed {
    fn feed(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn feeds(source: &CountingFeed) -> usize {
    source.0.load(Ordering::SeqCst)
}

#[test]
fn a_spinning_receiver_feeds_from_the_latest_source() {
    let p = Process::new(pid());
    let a = Arc::new(CountingFeed(AtomicUsize::new(0)));
    let b = Arc::new(CountingFeed(AtomicUsize::new(0)));
    let weak_a: Weak<dyn Feed> = Arc::downgrade(&a) as Weak<dyn Feed>;
    p.note_source(1, || weak_a);
    // The same source again: nothing to make.
    p.note_source(1, || unreachable!("the source did not change"));
    // An empty queue: the spin feeds from the source on every look.
    assert!(p.spin_for_message(AfterWrite::Spin).is_none());
    assert!(feeds(&a) > 1);
    let weak_b: Weak<dyn Feed> = Arc::downgrade(&b) as Weak<dyn Feed>;
    p.note_source(2, || weak_b);
    p.source().expect("b is alive").feed();
    assert_eq!(feeds(&b), 1);
    // A source that is gone feeds nobody.
    drop(b);
    assert!(p.source().is_none());
}

#[test]
fn messages_come_out_in_order() {
    let p = Process::new(pid());
    for i in 0..3 {
        assert!(p.deliver(Message::from_term(&Term::Int(i))));
    }
    for i in 0..3 {
        assert_eq!(p.wait(None).unwrap().to_term().unwrap(), Term::Int(i));
    }
    assert_eq!(
        p.wait(Some(Instant::now() + Duration::from_millis(10)))
            .unwrap_err(),
        Empty::Timeout
    );
}

#[test]
fn a_blocked_receiver_is_woken() {
    let p = Arc::new(Process::new(pid()));
    let q = p.clone();
    let t = std::thread::spawn(move || q.wait(None).map(|m| m.to_term().unwrap()));
    std::thread::sleep(Duration::from_millis(20));
    p.deliver(Message::from_term(&Term::atom("hi")));
    assert_eq!(t.join().unwrap().unwrap(), Term::atom("hi"));
}

#[test]
fn closing_wakes_and_drops() {
    let p = Arc::new(Process::new(pid()));
    let q = p.clone();
    let t = std::thread::spawn(move || q.wait(None).unwrap_err());
    std::thread::sleep(Duration::from_millis(20));
    assert!(p.close());
    assert_eq!(t.join().unwrap(), Empty::Closed);
    assert!(!p.deliver(Message::from_term(&Term::Int(1))));
}

/// A process whose wake hook counts its calls.
fn process_counting_wakes() -> (Process, Arc<AtomicUsize>) {
    let p = Process::new(pid());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    p.set_wake(Some(Arc::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
    })));
    (p, count)
}

#[test]
fn wake_fires_on_the_first_message_after_an_empty_look() {
    let (p, count) = process_counting_wakes();
    p.deliver(Message::from_term(&Term::Int(1)));
    p.deliver(Message::from_term(&Term::Int(2)));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(p.try_receive().is_some());
    assert!(p.try_receive().is_some());
    // Not yet asked for: nobody has found the queue empty since the last call.
    p.deliver(Message::from_term(&Term::Int(3)));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(p.try_receive().is_some());
    assert!(p.try_receive().is_none());
    p.deliver(Message::from_term(&Term::Int(4)));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn a_first_look_does_not_ask_for_the_wake_hook() {
    let (p, count) = process_counting_wakes();
    p.deliver(Message::from_term(&Term::Int(1)));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(p.pop().is_some());
    assert!(p.pop().is_none());
    // A spinning receiver takes this one itself: no call of the hook.
    p.deliver(Message::from_term(&Term::Int(2)));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(p.spin_for_message(AfterWrite::Spin).is_some());
    // A receiver about to wait asks; the next message calls the hook.
    assert!(p.try_receive().is_none());
    p.deliver(Message::from_term(&Term::Int(3)));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn close_wakes_every_blocked_receiver() {
    let p = Arc::new(Process::new(pid()));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let q = p.clone();
            std::thread::spawn(move || q.wait(Some(Instant::now() + Duration::from_secs(10))))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    assert!(p.close());
    for w in waiters {
        assert_eq!(w.join().unwrap().unwrap_err(), Empty::Closed);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "woken, not timed out"
    );
    // And later receives see the close at once.
    assert_eq!(p.wait(None).unwrap_err(), Empty::Closed);
    assert!(p.try_receive().is_none());
}

#[test]
fn receivers_on_two_threads_get_each_message_once() {
    let p = Arc::new(Process::new(pid()));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let q = p.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(m) = q.wait(Some(Instant::now() + Duration::from_millis(300))) {
                    got.push(m.to_term().unwrap());
                }
                got
            })
        })
        .collect();
    for i in 0..10_000 {
        assert!(p.deliver(Message::from_term(&Term::Int(i))));
    }
    let mut all: Vec<i64> = waiters
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .map(|t| t.as_int().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    assert_eq!(p.pending(), 0);
}

#[test]
fn pending_counts_what_is_queued() {
    let p = Process::new(pid());
    for i in 0..5 {
        p.deliver(Message::from_term(&Term::Int(i)));
    }
    assert_eq!(p.pending(), 5);
    let mut some = Vec::new();
    p.drain(3, &mut some);
    assert_eq!(some.len(), 3);
    assert_eq!(p.pending(), 2);
}

#[test]
fn no_wake_up_is_lost_when_a_message_races_a_sleeper() {
    // The receiver goes to sleep while the sender pushes, over and over, with the two
    // landing in every order; a lost signal would show as a wait running to its deadline.
    let p = Arc::new(Process::new(pid()));
    let q = p.clone();
    let rounds = 3000;
    let receiver = std::thread::spawn(move || {
        for i in 0..rounds {
            let start = Instant::now();
            let m = q
                .wait(Some(start + Duration::from_secs(5)))
                .expect("a message");
            assert_eq!(m.to_term().unwrap(), Term::Int(i));
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "round {i} waited too long"
            );
        }
    });
    for i in 0..rounds {
        if i % 3 == 0 {
            std::thread::yield_now();
        }
        for _ in 0..(i % 7) * 50 {
            std::hint::spin_loop();
        }
        assert!(p.deliver(Message::from_term(&Term::Int(i))));
        while p.pending() > 0 {
            std::hint::spin_loop();
        }
    }
    receiver.join().unwrap();
}

#[test]
fn a_term_nested_too_deep_for_the_node_is_refused_without_recursing() {
    // 200,000 nested one-element lists: dropping such a Term recursively would overflow the
    // stack of a test thread.
    let depth = 200_000;
    let mut body = Vec::with_capacity(depth * 6 + 1);
    for _ in 0..depth {
        body.extend_from_slice(&[108, 0, 0, 0, 1]); // LIST_EXT of one element
    }
    body.push(106); // NIL_EXT: the innermost element
    body.extend(std::iter::repeat_n(106, depth)); // each list's tail
    let message = Message {
        body: Bytes::from(body),
        atoms: Arc::from(Vec::new()),
        bulks: Default::default(),
    };
    let error = message.to_term().unwrap_err();
    assert!(error.to_string().contains("nested deeper"), "{error}");
}
