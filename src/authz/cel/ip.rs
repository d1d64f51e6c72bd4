//! The Kubernetes CEL IP library (`ip()`, `isIP()`, `ip.isCanonical()`
//! and the address tests), which the `cel` crate does not ship, with the
//! semantics of the apiserver's library: Go's `netip` rules, where an
//! IPv4-mapped IPv6 address and an address with a zone are not IPs.

use std::any::Any;
use std::net::IpAddr;

use cel::common::types::{CelBool, CelInt, CelString, STRING_TYPE, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// The CEL type of an address, `net.IP` as the apiserver names it.
const fn ip_type() -> Type {
    Type::new_unspecified_type("net.IP")
}

static IP_TYPE: Type = ip_type();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ip(IpAddr);

impl Val for Ip {
    fn get_type(&self) -> &Type {
        <Self as Val>::cel_type()
    }

    fn cel_type() -> &'static Type {
        &IP_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<Ip>().is_some_and(|o| o == self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Ip {}

/// An address as the apiserver's `ip()` parses it. Rust's parser, like
/// Go's `netip.ParseAddr`, refuses zones and IPv4 octets with leading
/// zeros; IPv4-mapped IPv6 addresses are refused on top, as the library
/// does.
fn parse(s: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = s
        .parse()
        .map_err(|_| format!("IP Address {s:?} parse error during conversion from string"))?;
    if let IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(addr)
}

fn string_arg<'a>(
    args: &'a [CowVal<'_, '_>],
    i: usize,
    function: &str,
) -> Result<&'a str, ExecutionError> {
    args.get(i)
        .and_then(|a| a.downcast_ref::<CelString>())
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::function_error(function, "expected a string"))
}

fn ip_arg(args: &[CowVal<'_, '_>], function: &str) -> Result<IpAddr, ExecutionError> {
    args.first()
        .and_then(|a| a.downcast_ref::<Ip>())
        .map(|ip| ip.0)
        .ok_or_else(|| ExecutionError::function_error(function, "expected an IP"))
}

fn boolean<'b, 'v>(b: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelBool::from(b)))
}

/// Registers the library on `env`.
pub fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], |args| {
        let s = string_arg(&args, 0, "ip")?;
        let addr = parse(s).map_err(|e| ExecutionError::function_error("ip", e))?;
        Ok(CowVal::owned(Ip(addr)))
    })?;
    env.add_overload("isIP", "is_ip_string", vec![STRING_TYPE], |args| {
        boolean(parse(string_arg(&args, 0, "isIP")?).is_ok())
    })?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical_string",
        vec![STRING_TYPE],
        |args| {
            let s = string_arg(&args, 0, "ip.isCanonical")?;
            let addr = parse(s).map_err(|e| ExecutionError::function_error("ip.isCanonical", e))?;
            // Rust prints IPv6 as RFC 5952 says, as Go's netip does.
            boolean(addr.to_string() == s)
        },
    )?;
    env.add_overload("string", "ip_to_string", vec![ip_type()], |args| {
        let addr = ip_arg(&args, "string")?;
        Ok(CowVal::owned(CelString::from(addr.to_string())))
    })?;
    env.add_member_overload("family", "ip_family", ip_type(), vec![], |args| {
        let family = match ip_arg(&args, "family")? {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 6,
        };
        Ok(CowVal::owned(CelInt::from(family)))
    })?;
    env.add_member_overload(
        "isUnspecified",
        "ip_is_unspecified",
        ip_type(),
        vec![],
        |args| boolean(ip_arg(&args, "isUnspecified")?.is_unspecified()),
    )?;
    env.add_member_overload("isLoopback", "ip_is_loopback", ip_type(), vec![], |args| {
        boolean(ip_arg(&args, "isLoopback")?.is_loopback())
    })?;
    env.add_member_overload(
        "isLinkLocalMulticast",
        "ip_is_link_local_multicast",
        ip_type(),
        vec![],
        |args| {
            boolean(is_link_local_multicast(ip_arg(
                &args,
                "isLinkLocalMulticast",
            )?))
        },
    )?;
    env.add_member_overload(
        "isLinkLocalUnicast",
        "ip_is_link_local_unicast",
        ip_type(),
        vec![],
        |args| boolean(is_link_local_unicast(ip_arg(&args, "isLinkLocalUnicast")?)),
    )?;
    env.add_member_overload(
        "isGlobalUnicast",
        "ip_is_global_unicast",
        ip_type(),
        vec![],
        |args| boolean(is_global_unicast(ip_arg(&args, "isGlobalUnicast")?)),
    )?;
    Ok(())
}

/// Go's `netip.Addr.IsLinkLocalMulticast`: 224.0.0.0/24, ff02::/16 (any
/// flags).
fn is_link_local_multicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    }
}

/// Go's `IsLinkLocalUnicast`: 169.254.0.0/16, fe80::/10.
fn is_link_local_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.octets()[..2] == [169, 254],
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Go's `IsGlobalUnicast`: anything but unspecified, loopback, multicast,
/// link-local unicast and the IPv4 broadcast address. Private ranges count
/// as global unicast, as in Go.
fn is_global_unicast(a: IpAddr) -> bool {
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || is_link_local_unicast(a)
        || broadcast)
}
