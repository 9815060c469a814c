//! Plugs a [`Card`] into pcscd through vsmartcard's `vpcd` virtual reader.
//!
//! The `vpcd` IFD handler (Debian package `vsmartcard-vpcd`) listens on TCP
//! (port `0x8C7B` = 35963 for its first slot, 35964 for the second, as set by
//! `DEVICENAME /dev/null:0x8C7B` in `/etc/reader.conf.d/vpcd`); the virtual
//! card is the TCP *client*. Every message, in both directions, is a 2-byte
//! big-endian length followed by that many bytes:
//!
//! | vpcd sends | meaning | the card answers |
//! |---|---|---|
//! | `00 01 00` | power off | nothing |
//! | `00 01 01` | power on | nothing |
//! | `00 01 02` | reset | nothing |
//! | `00 01 04` | get ATR (also polled for presence) | the ATR |
//! | `LL LL` C-APDU (2 bytes or more) | a command | the R-APDU |
//!
//! Power off, power on and reset all clear the chip's volatile state
//! ([`Card::reset`]: selection, verified PINs, pending GET RESPONSE), as a
//! real power cycle does; the non-volatile chip memory is untouched.
//!
//! Robustness: a message can never exceed 65 535 bytes (the length is 16
//! bits), so the buffer is bounded; an APDU the chip cannot parse gets the
//! chip's `67 00`. A one-byte message other than the four control codes can
//! only be a one-byte "APDU" that vpcd waits an answer for, so it is answered
//! `67 00` (wrong length) rather than ignored, which would hang pcscd. A
//! zero-length message is never sent by vpcd and is ignored. Nothing here
//! panics, whatever the peer sends.
//!
//! Note that vpcd binds its port on all interfaces (`INADDR_ANY`): on a
//! machine reachable from a network, firewall the port, since whoever
//! connects first *is* the card in that slot.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::{Card, CardError};

/// vpcd's default port (`0x8C7B`, first slot).
pub const DEFAULT_PORT: u16 = 35963;

/// Default host: vpcd on this machine.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The ATR the card gives: the one My Number Card ATR in OpenSC's `jpki`
/// driver table (`jpki.md` §1.1). T=1 only (TD1 `81`, TD2 `31`), IFSC 254,
/// no historical bytes; the check byte `14` makes the XOR of T0..TCK zero.
pub const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// Control code: power off.
pub const CTRL_OFF: u8 = 0x00;
/// Control code: power on.
pub const CTRL_ON: u8 = 0x01;
/// Control code: reset.
pub const CTRL_RESET: u8 = 0x02;
/// Control code: get ATR.
pub const CTRL_ATR: u8 = 0x04;

/// How often a blocked read wakes up to look at `stop()`.
const POLL: Duration = Duration::from_millis(200);
/// Longest wait for one TCP connect attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A peer that does not take our answer within this time is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest pause between two connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What happened on the link, for a caller that reports progress.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VpcdEvent {
    /// Connected to vpcd: the card is now "inserted" in the reader.
    Connected(SocketAddr),
    /// The connection ended (vpcd closed it, or an I/O error: the text);
    /// the card will reconnect.
    Disconnected(String),
    /// A connection attempt failed (the text); the next one is after `retry_in`.
    ConnectFailed {
        /// Why it failed.
        error: String,
        /// Pause before the next attempt.
        retry_in: Duration,
    },
}

/// Serves `card` to the vpcd reader at `host:port` until `stop()` returns
/// true, reconnecting (with a backoff of 0.1 s doubling up to 2 s) whenever
/// vpcd is not there yet or the connection drops, e.g. when pcscd restarts.
///
/// `stop` is polled at least every 200 ms. Returns `Ok(())` once it says
/// stop; `Err(CardError::Transport)` only if `host:port` does not resolve.
pub fn serve_vpcd(
    card: Card,
    host: &str,
    port: u16,
    stop: impl Fn() -> bool,
) -> Result<(), CardError> {
    serve_vpcd_with_events(card, host, port, stop, |_| {})
}

/// [`serve_vpcd`], reporting connections and disconnections to `on_event`.
pub fn serve_vpcd_with_events(
    mut card: Card,
    host: &str,
    port: u16,
    stop: impl Fn() -> bool,
    mut on_event: impl FnMut(VpcdEvent),
) -> Result<(), CardError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| CardError::Transport(format!("cannot resolve {host}:{port}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(CardError::Transport(format!(
            "{host}:{port} resolves to no address"
        )));
    }
    let mut backoff = BACKOFF_MIN;
    while !stop() {
        match connect(&addrs) {
            Ok((stream, addr)) => {
                // A new connection is a card freshly inserted: no session.
                card.reset();
                on_event(VpcdEvent::Connected(addr));
                let (exchanged, end) = serve_stream(&mut card, &mut Link(&stream), &stop);
                // Removed from the reader: the chip loses power.
                card.reset();
                match end {
                    End::Stopped => break,
                    End::Closed => on_event(VpcdEvent::Disconnected("closed by vpcd".into())),
                    End::Failed(e) => on_event(VpcdEvent::Disconnected(e.to_string())),
                }
                // Reconnect soon after a working session; back off further
                // after a connection that died without exchanging anything.
                if exchanged {
                    backoff = BACKOFF_MIN;
                }
                pause(backoff, &stop);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => {
                on_event(VpcdEvent::ConnectFailed {
                    error: e.to_string(),
                    retry_in: backoff,
                });
                pause(backoff, &stop);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    card.reset();
    Ok(())
}

/// The card's answer to one vpcd message, if it expects one.
///
/// This is the whole protocol minus the framing: control codes (see the
/// module documentation) and C-APDUs. Never panics.
pub fn handle_message(card: &mut Card, message: &[u8]) -> Option<Vec<u8>> {
    match message {
        [] => None,
        [CTRL_OFF | CTRL_ON | CTRL_RESET] => {
            card.reset();
            None
        }
        [CTRL_ATR] => Some(ATR.to_vec()),
        // A one-byte "APDU": too short for a header.
        [_] => Some(vec![0x67, 0x00]),
        apdu => Some(card.process_apdu(apdu)),
    }
}

fn connect(addrs: &[SocketAddr]) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last = io::Error::new(ErrorKind::NotFound, "no address");
    for &addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(POLL))?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok((stream, addr));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The TCP link to vpcd, acknowledging every segment at once.
///
/// vpcd 3.3 (Debian 12) puts a message's 2-byte length and its body on the
/// wire as two segments without `TCP_NODELAY` (seen with strace: the body
/// arrives 40–200 ms after the length): Nagle holds the body back until the
/// length is acknowledged, and our delayed ACK made every APDU take ~44 ms.
/// With quick ACKs it takes ~50 µs. Quick-ACK mode is not sticky in Linux,
/// so it is re-armed before every read.
struct Link<'a>(&'a TcpStream);

impl Read for Link<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        quick_ack(self.0);
        (&mut &*self.0).read(buf)
    }
}

impl Write for Link<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&mut &*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&mut &*self.0).flush()
    }
}

#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    // Only a latency optimisation: an error changes nothing else.
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_: &TcpStream) {}

/// Sleeps `total`, waking every [`POLL`] to check `stop`.
fn pause(total: Duration, stop: &impl Fn() -> bool) {
    let until = Instant::now() + total;
    while !stop() {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep((until - now).min(POLL));
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// `stop()` said so.
    Stopped,
    /// The peer closed the connection between two messages.
    Closed,
    /// I/O error, or the peer closed in the middle of a message.
    Failed(io::Error),
}

/// Answers messages on one connection until it ends; also tells whether
/// at least one message was exchanged.
fn serve_stream<S: Read + Write>(
    card: &mut Card,
    stream: &mut S,
    stop: &impl Fn() -> bool,
) -> (bool, End) {
    let mut exchanged = false;
    // Allocated once, at the largest size a 16-bit length allows.
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let mut header = [0u8; 2];
        match read_full(stream, &mut header, stop) {
            Ok(true) => {}
            Ok(false) => return (exchanged, End::Closed),
            Err(e) if e.kind() == ErrorKind::Interrupted => return (exchanged, End::Stopped),
            Err(e) => return (exchanged, End::Failed(e)),
        }
        let len = usize::from(u16::from_be_bytes(header));
        let Some(body) = buf.get_mut(..len) else {
            // Unreachable: len <= u16::MAX == buf.len().
            return (exchanged, End::Failed(io::Error::other("message too long")));
        };
        match read_full(stream, body, stop) {
            Ok(true) => {}
            Ok(false) => {
                return (
                    exchanged,
                    End::Failed(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "connection closed inside a message",
                    )),
                );
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return (exchanged, End::Stopped),
            Err(e) => return (exchanged, End::Failed(e)),
        }
        exchanged = true;
        let Some(answer) = handle_message(card, body) else {
            continue;
        };
        if let Err(e) = write_frame(stream, &answer) {
            return (exchanged, End::Failed(e));
        }
    }
}

/// Fills `buf`, retrying read timeouts until `stop()` (reported as
/// `Interrupted`). `Ok(false)`: the peer closed the stream first.
fn read_full<S: Read>(
    stream: &mut S,
    buf: &mut [u8],
    stop: &impl Fn() -> bool,
) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match stream.read(rest) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop() {
                    return Err(io::Error::new(ErrorKind::Interrupted, "stopped"));
                }
            }
            // A signal: just retry.
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                if stop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn write_frame<S: Write>(stream: &mut S, payload: &[u8]) -> io::Result<()> {
    // The chip's answers are at most 256 + 2 bytes; refuse rather than truncate.
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(ErrorKind::InvalidData, "answer longer than 65535 bytes"))?;
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::Variant;
    use crate::testutil::{self, AUTH_PIN};

    const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";

    /// The vpcd side of the protocol, driven by the test.
    struct FakeVpcd(TcpStream);

    impl FakeVpcd {
        fn send(&mut self, payload: &[u8]) {
            let len = u16::try_from(payload.len()).unwrap().to_be_bytes();
            self.0.write_all(&len).unwrap();
            self.0.write_all(payload).unwrap();
        }

        fn recv(&mut self) -> Vec<u8> {
            let mut len = [0u8; 2];
            self.0.read_exact(&mut len).unwrap();
            let mut body = vec![0; usize::from(u16::from_be_bytes(len))];
            self.0.read_exact(&mut body).unwrap();
            body
        }

        fn apdu(&mut self, hex_apdu: &str) -> String {
            self.send(&hex::decode(hex_apdu).unwrap());
            hex::encode_upper(self.recv())
        }
    }

    fn accept(listener: &TcpListener) -> FakeVpcd {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        FakeVpcd(stream)
    }

    #[test]
    fn control_codes_and_apdus() {
        let (mut card, _chip) = testutil::card(Variant::Card);
        assert_eq!(handle_message(&mut card, &[CTRL_ATR]), Some(ATR.to_vec()));
        assert_eq!(handle_message(&mut card, &[]), None);
        for code in [CTRL_OFF, CTRL_ON, CTRL_RESET] {
            assert_eq!(handle_message(&mut card, &[code]), None);
        }
        assert_eq!(handle_message(&mut card, &[0x03]), Some(vec![0x67, 0x00]));
        assert_eq!(
            handle_message(&mut card, &[0x00, 0xA4]),
            Some(vec![0x67, 0x00])
        );
        let sel = hex::decode(SELECT_JPKI).unwrap();
        assert_eq!(handle_message(&mut card, &sel), Some(vec![0x90, 0x00]));
        // TCK: XOR of T0..TCK is zero.
        assert_eq!(ATR[1..].iter().fold(0, |a, b| a ^ b), 0);
    }

    #[test]
    fn garbage_never_panics() {
        let (mut card, _chip) = testutil::card(Variant::Card);
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x % 300) as usize;
            let msg: Vec<u8> = (0..len).map(|i| (x >> (i % 24)) as u8).collect();
            if let Some(answer) = handle_message(&mut card, &msg) {
                assert!(answer.len() >= 2);
            }
        }
    }

    #[test]
    fn serves_reconnects_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (card, _chip) = testutil::card(Variant::Card);
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = {
            let stop = Arc::clone(&stop);
            let events = Arc::clone(&events);
            std::thread::spawn(move || {
                serve_vpcd_with_events(
                    card,
                    "127.0.0.1",
                    port,
                    || stop.load(Ordering::SeqCst),
                    |e| events.lock().unwrap().push(e),
                )
            })
        };

        let mut vpcd = accept(&listener);
        vpcd.send(&[CTRL_ON]);
        vpcd.send(&[CTRL_ATR]);
        assert_eq!(vpcd.recv(), ATR);
        assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
        assert_eq!(vpcd.apdu("00A4020C020018"), "9000");
        assert_eq!(
            vpcd.apdu(&format!("0020008004{}", hex::encode(AUTH_PIN))),
            "9000"
        );
        // Reset: the verified PIN and the selection are gone.
        vpcd.send(&[CTRL_RESET]);
        assert_eq!(vpcd.apdu("00A4020C020018"), "6A82");
        // Extended length and a message of the largest size are answered, not fatal.
        assert_eq!(vpcd.apdu("00B00000000100"), "6700");
        let big = vec![0xAB; usize::from(u16::MAX)];
        vpcd.send(&big);
        assert_eq!(hex::encode_upper(vpcd.recv()), "6700");
        // A zero-length message is ignored; the link still works.
        vpcd.send(&[]);
        vpcd.send(&[CTRL_ATR]);
        assert_eq!(vpcd.recv(), ATR);

        // vpcd goes away mid-message: the card reconnects, with a fresh session.
        vpcd.0.write_all(&[0x00, 0x10, 0x00]).unwrap();
        drop(vpcd);
        let mut vpcd = accept(&listener);
        vpcd.send(&[CTRL_ATR]);
        assert_eq!(vpcd.recv(), ATR);
        assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");

        stop.store(true, Ordering::SeqCst);
        server.join().unwrap().unwrap();
        let events = events.lock().unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, VpcdEvent::Connected(_)))
                .count(),
            2,
            "{events:?}"
        );
        // After stopping, the card has hung up.
        let mut byte = [0u8; 1];
        assert_eq!(vpcd.0.read(&mut byte).unwrap(), 0);
    }

    /// The card served on a fresh listener; the handle stops it.
    fn serve_on_listener() -> (
        TcpListener,
        Arc<AtomicBool>,
        std::thread::JoinHandle<Result<(), CardError>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (card, _chip) = testutil::card(Variant::Card);
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                serve_vpcd(card, "127.0.0.1", port, || stop.load(Ordering::SeqCst))
            })
        };
        (listener, stop, server)
    }

    /// Selects the authentication PIN EF on a freshly connected link and
    /// reads its counter with an empty VERIFY (which spends no try).
    fn auth_pin_counter(vpcd: &mut FakeVpcd) -> String {
        assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
        assert_eq!(vpcd.apdu("00A4020C020018"), "9000");
        vpcd.apdu("00200080")
    }

    #[test]
    fn dropped_link_mid_verify_counts_a_whole_try_and_never_half_of_one() {
        let (listener, stop, server) = serve_on_listener();
        let wrong_verify = hex::decode("002000800439393939").unwrap();

        let mut vpcd = accept(&listener);
        assert_eq!(auth_pin_counter(&mut vpcd), "63C3");
        // vpcd dies halfway through a frame: the chip never saw a command,
        // so nothing is counted. Twice: cut inside the APDU, and cut after a
        // complete wrong VERIFY inside a frame announced 4 bytes longer (the
        // bytes received would make a valid command on their own).
        let whole = wrong_verify.len();
        for (announced, sent) in [(whole, 6), (whole + 4, whole)] {
            let len = u16::try_from(announced).unwrap().to_be_bytes();
            vpcd.0.write_all(&len).unwrap();
            vpcd.0.write_all(&wrong_verify[..sent]).unwrap();
            drop(vpcd);
            vpcd = accept(&listener);
            assert_eq!(
                auth_pin_counter(&mut vpcd),
                "63C3",
                "half a frame ({sent} of {announced} bytes) spent a try"
            );
        }

        // The whole wrong VERIFY arrives, but vpcd goes away before reading
        // the answer: the try was counted before the comparison and stays
        // spent on the reconnected card (no refund when the answer is lost).
        vpcd.send(&wrong_verify);
        drop(vpcd);
        let mut vpcd = accept(&listener);
        assert_eq!(
            auth_pin_counter(&mut vpcd),
            "63C2",
            "a lost answer refunded the try"
        );

        // The same with the connection reset (RST, not FIN) right after
        // the frame: whether or not the chip got the command, a try is never
        // given back; if it got it, exactly one is counted.
        vpcd.send(&wrong_verify);
        socket2::SockRef::from(&vpcd.0)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(vpcd);
        let mut vpcd = accept(&listener);
        let after_reset = auth_pin_counter(&mut vpcd);
        assert!(
            after_reset == "63C2" || after_reset == "63C1",
            "tries after a reset mid-command: {after_reset}"
        );

        // The right PIN still works and restores the counter.
        assert_eq!(
            vpcd.apdu(&format!("0020008004{}", hex::encode(AUTH_PIN))),
            "9000"
        );
        assert_eq!(vpcd.apdu("00200080"), "63C3");
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn waits_for_vpcd_then_connects() {
        // Reserve a port, free it, and start the card before anyone listens.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (card, _chip) = testutil::card(Variant::Card);
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                serve_vpcd(card, "127.0.0.1", port, || stop.load(Ordering::SeqCst))
            })
        };
        std::thread::sleep(Duration::from_millis(400));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let mut vpcd = accept(&listener);
        vpcd.send(&[CTRL_ATR]);
        assert_eq!(vpcd.recv(), ATR);
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn unresolvable_host_is_an_error() {
        let (card, _chip) = testutil::card(Variant::Card);
        let err = serve_vpcd(card, "no-such-host.invalid", 1, || false).unwrap_err();
        assert!(matches!(err, CardError::Transport(_)), "{err:?}");
    }
}
