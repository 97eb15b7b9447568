//! One hand-built message per record type.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Msg;
use crate::parse::{
    Caa, Class, EdnsOption, EdnsOptionCode, Rcode, Rdata, Record, RrType, Soa, Srv, Sshfp,
    SvcParam, SvcParamKey, SvcParamValue, Svcb,
};

/// Parses a response to "example.com" whose single answer has this rdata.
fn answer(rtype: u16, rdata: &[u8]) -> Record {
    let message = Msg::response(1)
        .question("example.com", rtype)
        .answer(rtype, rdata)
        .parse_ok();
    assert_eq!(message.questions.len(), 1);
    let mut answers = message.answers.into_iter();
    let record = answers.next().expect("one answer");
    assert!(answers.next().is_none());
    assert_eq!(record.name.to_string(), "example.com");
    assert_eq!(record.rtype, RrType(rtype));
    assert_eq!((record.class, record.ttl), (Class::IN, 300));
    assert_eq!(usize::from(record.rdlength), rdata.len());
    record
}

#[test]
fn a() {
    let r = answer(1, &[192, 0, 2, 1]);
    assert_eq!(r.data, Rdata::A(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(r.data.to_presentation(), "192.0.2.1");
}

#[test]
fn aaaa_is_compressed() {
    let addr: Ipv6Addr = "2607:f8b0:400f:801::200e".parse().expect("valid address");
    let r = answer(28, &addr.octets());
    assert_eq!(r.data, Rdata::Aaaa(addr));
    assert_eq!(r.data.to_presentation(), "2607:f8b0:400f:801::200e");
}

#[test]
fn names_in_rdata_are_decompressed() {
    // "www" then a pointer to the question name at offset 12.
    let rdata = [3, b'w', b'w', b'w', 0xc0, 12];
    for (rtype, wrap) in [
        (5, Rdata::Cname as fn(_) -> _),
        (2, Rdata::Ns as fn(_) -> _),
        (12, Rdata::Ptr as fn(_) -> _),
        (39, Rdata::Dname as fn(_) -> _),
    ] {
        let r = answer(rtype, &rdata);
        let (Rdata::Cname(name) | Rdata::Ns(name) | Rdata::Ptr(name) | Rdata::Dname(name)) =
            &r.data
        else {
            panic!("type {rtype} decoded as {:?}", r.data);
        };
        assert_eq!(r.data, wrap(name.clone()));
        assert_eq!(name.to_string(), "www.example.com");
        assert_eq!(r.data.to_presentation(), "www.example.com");
    }
}

#[test]
fn mx_logs_the_exchange_only() {
    let r = answer(15, &[0, 10, 4, b'm', b'a', b'i', b'l', 0xc0, 12]);
    let Rdata::Mx {
        preference,
        exchange,
    } = &r.data
    else {
        panic!("{:?}", r.data)
    };
    assert_eq!(
        (*preference, exchange.to_string().as_str()),
        (10, "mail.example.com")
    );
    assert_eq!(r.data.to_presentation(), "mail.example.com");
}

#[test]
fn txt_keeps_strings_as_bytes() {
    let r = answer(16, &[3, b'a', b'b', b'c', 0, 2, 0xc5, 0xe9]);
    assert_eq!(
        r.data,
        Rdata::Txt(vec![b"abc".to_vec(), Vec::new(), vec![0xc5, 0xe9]])
    );
    assert_eq!(r.data.to_presentation(), "abc\\xc5\\xe9");

    let r = answer(
        16,
        &[5, b'v', b'=', b's', b'p', b'f', 4, b'1', b' ', 0xc3, 0xa9],
    );
    assert_eq!(r.data.to_presentation(), "v=spf1 \u{e9}");
    assert_eq!(answer(99, &[1, b'x']).data, Rdata::Txt(vec![b"x".to_vec()]));
    assert_eq!(answer(16, &[]).data, Rdata::Txt(Vec::new()));
}

#[test]
fn soa() {
    let mut rdata = vec![3, b'n', b's', b'1', 0xc0, 12];
    rdata.extend_from_slice(&[
        10, b'h', b'o', b's', b't', b'm', b'a', b's', b't', b'e', b'r', 0xc0, 12,
    ]);
    for v in [2024010101u32, 7200, 3600, 1209600, 300] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    let r = answer(6, &rdata);
    let Rdata::Soa(Soa {
        mname,
        rname,
        serial,
        refresh,
        retry,
        expire,
        minimum,
    }) = &r.data
    else {
        panic!("{:?}", r.data)
    };
    assert_eq!(
        (mname.to_string().as_str(), rname.to_string().as_str()),
        ("ns1.example.com", "hostmaster.example.com")
    );
    assert_eq!(
        (*serial, *refresh, *retry, *expire, *minimum),
        (2024010101, 7200, 3600, 1209600, 300)
    );
    assert_eq!(
        r.data.to_presentation(),
        "ns1.example.com hostmaster.example.com 2024010101 7200 3600 1209600 300"
    );
}

#[test]
fn srv() {
    let r = answer(
        33,
        &[0, 20, 0, 1, 0x13, 0xc4, 3, b's', b'i', b'p', 0xc0, 12],
    );
    let Rdata::Srv(Srv {
        priority,
        weight,
        port,
        target,
    }) = &r.data
    else {
        panic!("{:?}", r.data)
    };
    assert_eq!((*priority, *weight, *port), (20, 1, 5060));
    assert_eq!(target.to_string(), "sip.example.com");
    assert_eq!(r.data.to_presentation(), "20 1 5060 sip.example.com");
}

#[test]
fn https_with_every_known_key() {
    let v6: Ipv6Addr = "2001:db8::1".parse().expect("valid address");
    let mut rdata = vec![0, 1, 0]; // priority 1, target root
    rdata.extend_from_slice(&[0, 0, 0, 4, 0, 1, 0, 3]); // mandatory=alpn,port
    rdata.extend_from_slice(&[0, 1, 0, 6, 2, b'h', b'2', 2, b'h', b'3']); // alpn=h2,h3
    rdata.extend_from_slice(&[0, 2, 0, 0]); // no-default-alpn
    rdata.extend_from_slice(&[0, 3, 0, 2, 0x20, 0xfb]); // port=8443
    rdata.extend_from_slice(&[0, 4, 0, 8, 192, 0, 2, 1, 192, 0, 2, 2]); // ipv4hint
    rdata.extend_from_slice(&[0, 5, 0, 3, 1, 2, 3]); // ech
    rdata.extend_from_slice(&[0, 6, 0, 16]);
    rdata.extend_from_slice(&v6.octets()); // ipv6hint
    rdata.extend_from_slice(&[0xfd, 0xe8, 0, 2, b'x', b'"']); // key65000
    let r = answer(65, &rdata);
    let Rdata::Https(Svcb {
        priority,
        target,
        params,
    }) = &r.data
    else {
        panic!("{:?}", r.data)
    };
    assert_eq!((*priority, target.is_root()), (1, true));
    let expected = [
        (
            SvcParamKey::MANDATORY,
            SvcParamValue::Mandatory(vec![SvcParamKey::ALPN, SvcParamKey::PORT]),
        ),
        (
            SvcParamKey::ALPN,
            SvcParamValue::Alpn(vec![b"h2".to_vec(), b"h3".to_vec()]),
        ),
        (SvcParamKey::NO_DEFAULT_ALPN, SvcParamValue::NoDefaultAlpn),
        (SvcParamKey::PORT, SvcParamValue::Port(8443)),
        (
            SvcParamKey::IPV4HINT,
            SvcParamValue::Ipv4Hint(vec![
                Ipv4Addr::new(192, 0, 2, 1),
                Ipv4Addr::new(192, 0, 2, 2),
            ]),
        ),
        (SvcParamKey::ECH, SvcParamValue::Ech(vec![1, 2, 3])),
        (SvcParamKey::IPV6HINT, SvcParamValue::Ipv6Hint(vec![v6])),
        (SvcParamKey(65000), SvcParamValue::Other(b"x\"".to_vec())),
    ]
    .map(|(key, value)| SvcParam { key, value });
    assert_eq!(params.as_slice(), expected.as_slice());
    assert_eq!(SvcParamKey::IPV6HINT.name(), "ipv6hint");
    assert_eq!(
        r.data.to_presentation(),
        "1 . mandatory=alpn,port alpn=\"h2,h3\" no-default-alpn port=8443 \
         ipv4hint=192.0.2.1,192.0.2.2 ech=AQID ipv6hint=2001:db8::1 key65000=\"x\\\"\""
    );
}

#[test]
fn svcb_alias_mode() {
    let r = answer(64, &[0, 0, 3, b's', b'v', b'c', 0xc0, 12]);
    let Rdata::Svcb(svcb) = &r.data else {
        panic!("{:?}", r.data)
    };
    assert_eq!((svcb.priority, svcb.params.len()), (0, 0));
    assert_eq!(r.data.to_presentation(), "0 svc.example.com");
}

#[test]
fn caa() {
    let mut rdata = vec![0x80, 5];
    rdata.extend_from_slice(b"issueletsencrypt.org");
    let r = answer(257, &rdata);
    let Rdata::Caa(caa) = &r.data else {
        panic!("{:?}", r.data)
    };
    assert_eq!(
        caa,
        &Caa {
            flags: 0x80,
            tag: b"issue".to_vec(),
            value: b"letsencrypt.org".to_vec()
        }
    );
    assert!(caa.critical());
    assert_eq!(r.data.to_presentation(), "128 issue \"letsencrypt.org\"");
}

#[test]
fn sshfp() {
    let r = answer(44, &[1, 1, 0x19, 0x8c, 0x34, 0xa9]);
    assert_eq!(
        r.data,
        Rdata::Sshfp(Sshfp {
            algorithm: 1,
            fp_type: 1,
            fingerprint: vec![0x19, 0x8c, 0x34, 0xa9]
        })
    );
    assert_eq!(r.data.to_presentation(), "1 1 198c34a9");
}

#[test]
fn null_and_unknown_are_kept_raw() {
    let r = answer(10, b"VACKD\x03\xc5\xe9\x01");
    assert_eq!(r.data, Rdata::Null(b"VACKD\x03\xc5\xe9\x01".to_vec()));
    assert_eq!(r.data.to_presentation(), "VACKD\u{3}\\xc5\\xe9\u{1}");

    let r = answer(65534, &[0xde, 0xad]);
    assert_eq!(r.data, Rdata::Unknown(vec![0xde, 0xad]));
    assert_eq!(
        (r.rtype.name().as_ref(), r.data.to_presentation().as_str()),
        ("TYPE65534", "\\# 2 dead")
    );
    assert_eq!(answer(46, &[]).data.to_presentation(), "\\# 0");
}

#[test]
fn opt_decodes_edns_and_widens_the_rcode() {
    let mut rdata = vec![0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]; // COOKIE
    rdata.extend_from_slice(&[0, 12, 0, 0]); // PADDING, empty
    let message = Msg::new(7, 0x8180, [1, 0, 0, 1])
        .question("example.com", 1)
        .record(&[0], 41, 1232, 0x0100_8000, &rdata)
        .parse_ok();
    let edns = message.edns().expect("an OPT record");
    assert_eq!(
        (edns.udp_payload_size, edns.extended_rcode, edns.version),
        (1232, 1, 0)
    );
    assert!(edns.dnssec_ok);
    assert_eq!(edns.z, 0);
    assert_eq!(
        edns.options,
        vec![
            EdnsOption {
                code: EdnsOptionCode::COOKIE,
                data: vec![1, 2, 3, 4, 5, 6, 7, 8]
            },
            EdnsOption {
                code: EdnsOptionCode::PADDING,
                data: Vec::new()
            },
        ]
    );
    assert_eq!(message.rcode(), Rcode::BADVERS);
    assert_eq!(message.header.rcode, Rcode::NOERROR);
    let opt = message.additional.first().expect("one additional");
    assert_eq!(
        (opt.name.to_string().as_str(), opt.rtype.name().as_ref()),
        (".", "OPT")
    );
    assert_eq!(
        opt.data.to_presentation(),
        "\\# 16 000a00080102030405060708000c0000"
    );
}

#[test]
fn update_records_without_rdata() {
    // RFC 2136: "delete all A records of the name" is type A, class ANY, rdlength 0.
    let message = Msg::new(1, 0x2800, [1, 0, 1, 0])
        .question("example.com", 6)
        .record(&[0xc0, 12], 1, 255, 0, &[])
        .parse_ok();
    let update = message.authority.first().expect("one update record");
    assert_eq!(
        (update.data.clone(), update.class),
        (Rdata::Empty, Class::ANY)
    );
    assert_eq!(update.data.to_presentation(), "");
}
