//! `pods/<name>/exec` over a websocket with the Kubernetes remote-command
//! channel protocol (`v5.channel.k8s.io`, also `v4`): whatever arrives on
//! stdin (channel 0) is echoed on stdout (channel 1). When the client closes
//! stdin (v5 close message), a `Success` status goes out on the error
//! channel (3) and the websocket is closed, which is how kubectl learns the
//! command finished.
//!
//! SPDY/3.1 upgrades are answered 400: the stand-in speaks only websockets,
//! which kubectl has used first since 1.31.

use aws_lc_rs::digest;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::status::ApiError;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest websocket message accepted from a client.
const MAX_MESSAGE: usize = 1 << 20;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Chooses the channel protocol from the client's offer.
fn choose_protocol(headers: &HeaderMap) -> Option<&'static str> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .collect();
    ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
}

/// The `Sec-WebSocket-Accept` value for a key (RFC 6455 section 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// Answers an exec request: switches to the websocket and echoes stdin.
pub fn exec(mut req: Request) -> Result<Response, ApiError> {
    let headers = req.headers();
    if header_has_token(headers, header::UPGRADE, "SPDY/3.1") {
        return Err(ApiError::bad_request(
            "the stand-in apiserver serves exec over websockets only",
        ));
    }
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(ApiError::bad_request("unsupported websocket version"));
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Err(ApiError::bad_request("missing Sec-WebSocket-Key"));
    };
    let Some(protocol) = choose_protocol(headers) else {
        return Err(ApiError::bad_request(
            "no supported channel protocol offered (v5.channel.k8s.io, v4.channel.k8s.io)",
        ));
    };
    let stdin = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "stdin=true" || kv == "stdin=1");
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                if let Err(e) = session(io, protocol == "v5.channel.k8s.io", stdin).await {
                    tracing::debug!(error = %e, "exec session ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(&key))
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// A websocket frame's opcode and payload.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    if !masked {
        return Err(invalid("client frames must be masked"));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_MESSAGE)
        .ok_or_else(|| invalid("frame too large"))?;
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(u8::try_from(n).unwrap_or(0)),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    w.write_all(&out).await?;
    w.flush().await
}

async fn finish<W: AsyncWrite + Unpin>(w: &mut W) -> std::io::Result<()> {
    let mut status = vec![ERROR];
    status.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
    write_frame(w, 0x2, &status).await?;
    write_frame(w, 0x8, &1000u16.to_be_bytes()).await
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    v5: bool,
    stdin: bool,
) -> std::io::Result<()> {
    let (mut r, mut w) = tokio::io::split(io);
    if !stdin {
        // Nothing to echo: the command "ran" and succeeded.
        return finish(&mut w).await;
    }
    let mut message: Vec<u8> = Vec::new();
    loop {
        let frame = read_frame(&mut r).await?;
        match frame.opcode {
            0x0..=0x2 => {
                if message.len() + frame.payload.len() > MAX_MESSAGE {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "message too large",
                    ));
                }
                message.extend_from_slice(&frame.payload);
                if !frame.fin {
                    continue;
                }
                let data = std::mem::take(&mut message);
                match data.split_first() {
                    Some((&STDIN, rest)) if !rest.is_empty() => {
                        let mut out = Vec::with_capacity(rest.len() + 1);
                        out.push(STDOUT);
                        out.extend_from_slice(rest);
                        write_frame(&mut w, 0x2, &out).await?;
                    }
                    Some((&CLOSE, [STDIN])) if v5 => return finish(&mut w).await,
                    _ => {}
                }
            }
            0x8 => {
                let _ = write_frame(&mut w, 0x8, &1000u16.to_be_bytes()).await;
                return Ok(());
            }
            0x9 => write_frame(&mut w, 0xA, &frame.payload).await?,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
