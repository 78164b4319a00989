//! A real adapter: pooled TCP connections to a line echo server, validated by a
//! round trip at checkout. Shared by the `tcp_pool` example and the `tcp` test.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use weft_pool::{Manager, Metrics, RecycleError};

/// Starts a loopback echo server: each line is sent back; the line `quit` closes the
/// connection (to play a server that drops idle connections). Returns its address.
pub(crate) async fn start_echo_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "quit" {
                        return;
                    }
                    if write
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A pooled connection: a buffered stream, and whether an I/O error was seen on it.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: BufReader<TcpStream>,
    broken: bool,
}

impl Conn {
    /// Sends `line` and reads the echo. An error marks the connection broken, so the
    /// pool closes it when it comes back instead of handing it out again.
    pub(crate) async fn echo(&mut self, line: &str) -> io::Result<String> {
        let result = self.round_trip(line).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn round_trip(&mut self, line: &str) -> io::Result<String> {
        self.stream
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        let mut reply = String::new();
        if self.stream.read_line(&mut reply).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        Ok(reply.trim_end().to_owned())
    }

    /// Asks the server to close this connection (for demonstrations and tests).
    pub(crate) async fn ask_server_to_close(&mut self) -> io::Result<()> {
        self.stream.get_mut().write_all(b"quit\n").await
    }
}

/// Connects to the echo server; validates idle connections with a `ping` round trip.
#[derive(Debug)]
pub(crate) struct EchoManager {
    pub(crate) addr: SocketAddr,
}

impl Manager for EchoManager {
    type Object = Conn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<Conn> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            broken: false,
        })
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> Result<(), RecycleError<io::Error>> {
        match conn.echo("ping").await? {
            reply if reply == "ping" => Ok(()),
            other => Err(RecycleError::Message(format!("bad ping reply {other:?}"))),
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}
