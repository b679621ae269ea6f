//! The outbox and the writer with runs of pieces (frame headers and shares of big binaries):
//! every byte arrives once and in order, over plain TCP when the socket is full and takes
//! part of a run, and over a stream that is not TCP.

use super::*;
use std::io::Read;

fn pieces_of(lens: &[usize]) -> Vec<Bytes> {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| Bytes::from(vec![i as u8; len]))
        .collect()
}

#[test]
fn a_position_moves_over_pieces_and_skips_empty_ones() {
    let pieces = pieces_of(&[3, 0, 5, 0, 0, 2]);
    let mut at = Position::default();
    at.advance(&pieces, 2);
    assert_eq!(
        at,
        Position {
            piece: 0,
            offset: 2
        }
    );
    at.advance(&pieces, 1);
    assert_eq!(
        at,
        Position {
            piece: 2,
            offset: 0
        },
        "the empty piece is passed"
    );
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    at.advance(&pieces, 4);
    assert_eq!(at.slices(&pieces, &mut slices), 4);
    let lens: Vec<usize> = slices[..4].iter().map(|s| s.len()).collect();
    assert_eq!(lens, [1, 0, 0, 2]);
    at.advance(&pieces, 3);
    assert!(at.done(&pieces));
    // Runs longer than one call takes are written in turns of MAX_SLICES.
    let many = pieces_of(&[1; MAX_SLICES + 10]);
    assert_eq!(Position::default().slices(&many, &mut slices), MAX_SLICES);
}

/// Pieces like a big message's: short headers, then shares of one big buffer, with whole
/// small frames between them.
fn message_like_pieces(big: &Bytes, rounds: usize) -> Vec<Vec<Bytes>> {
    (0..rounds)
        .map(|round| {
            let mut pieces = vec![Bytes::from(vec![round as u8; 22])];
            for chunk in big.chunks(64 * 1024).take(40) {
                let at = chunk.as_ptr() as usize - big.as_ptr() as usize;
                pieces.push(big.slice(at..at + chunk.len()));
                pieces.push(Bytes::from(vec![0xee; 22]));
            }
            pieces
        })
        .collect()
}

#[test]
fn runs_of_pieces_arrive_whole_and_in_order_over_tcp_with_a_full_socket() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut theirs, _) = listener.accept().unwrap();
    // Small buffers, so that direct writes stop part-way into a run and the writer task
    // meets a full socket again and again.
    let small: libc::c_int = 16 * 1024;
    for socket in [&ours, &theirs] {
        use std::os::fd::AsRawFd;
        for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: a valid descriptor, and a pointer to an int with its size.
            let result = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&small as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(result, 0);
        }
    }
    ours.set_nonblocking(true).unwrap();
    let raw = Arc::new(ours.try_clone().unwrap());
    let output = Arc::new(Output::new(Some(raw), Instant::now()));
    let write_half = {
        let _entered = rt.enter();
        tokio::net::TcpStream::from_std(ours)
            .unwrap()
            .into_split()
            .1
    };
    rt.spawn(write_loop(
        write_half,
        output.clone(),
        Duration::from_secs(60),
    ));

    let big: Bytes = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let runs = message_like_pieces(&big, 6);
    let mut expected = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        run.iter().for_each(|p| expected.extend_from_slice(p));
        let count = run.len();
        assert!(output.push(run, 1));
        // Whole small frames between runs, as other senders' messages come.
        let frame = Bytes::from(vec![i as u8; 100]);
        expected.extend_from_slice(&frame);
        assert!(output.push(vec![frame], 1));
        let (_, messages, _) = output.counts();
        assert_eq!(messages, 2 * (i as u64 + 1), "{count} pieces");
    }
    output.close();
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes arrive as pushed");
    assert!(output.wait_finished(Duration::from_secs(10)));
    assert_eq!(output.counts().0, expected.len() as u64);
}

#[test]
fn runs_of_pieces_arrive_whole_and_in_order_over_a_stream_that_is_not_tcp() {
    use tokio::io::AsyncReadExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ours, mut theirs) = tokio::io::duplex(8 * 1024);
    let output = Arc::new(Output::new(None, Instant::now()));
    rt.spawn(write_loop(ours, output.clone(), Duration::from_secs(60)));
    let reader = rt.spawn(async move {
        let mut all = Vec::new();
        theirs.read_to_end(&mut all).await.map(|_| all)
    });
    let big: Bytes = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let mut expected = Vec::new();
    for run in message_like_pieces(&big, 4) {
        run.iter().for_each(|p| expected.extend_from_slice(p));
        assert!(output.push(run, 1));
    }
    output.close();
    let got = rt.block_on(reader).unwrap().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes arrive as pushed");
}
