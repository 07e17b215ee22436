//! Unit tests of `npy.rs`.

#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

#[test]
fn round_trips_and_rejects_garbage() -> Result<(), ClipError> {
    let tmp = taiyi_testkit::scratch_dir("npy-");
    let dir = tmp.path().to_path_buf();
    let p = dir.join("a.npy");
    let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    write_f32(&p, &[2, 3], &data)?;
    let bytes = std::fs::read(&p).map_err(|source| ClipError::Io {
        path: p.clone(),
        source,
    })?;
    assert_eq!((bytes.len() - 24) % 64, 0, "header padded to 64 bytes");
    assert_eq!(read_f32(&p)?, (vec![2, 3], data));
    write_f32(&p, &[4], &[1.0, 2.0, 3.0, 4.0])?;
    assert_eq!(read_f32(&p)?.0, vec![4]);
    assert!(write_f32(&p, &[5], &[1.0]).is_err());
    let junk = dir.join("junk.npy");
    std::fs::write(&junk, b"hello world").map_err(|source| ClipError::Io {
        path: junk.clone(),
        source,
    })?;
    assert!(matches!(read_f32(&junk), Err(ClipError::Npy { .. })));
    assert!(matches!(
        read_f32(&dir.join("missing.npy")),
        Err(ClipError::Read { .. })
    ));
    Ok(())
}

/// Issue 25 item 3: a `.npy` was read to its end whatever it was. Its length must be what
/// its header declares, checked before the data is read; FIFOs and devices are refused
/// without blocking.
#[test]
fn npy_length_must_be_what_its_header_declares() {
    let tmp = taiyi_testkit::scratch_dir("npy-len-");
    let dir = tmp.path().to_path_buf();
    let p = dir.join("a.npy");
    write_f32(&p, &[2, 3], &[0.5; 6]).unwrap();
    let good = std::fs::read(&p).unwrap();
    assert_eq!(read_bytes(&p).unwrap(), good);
    for (name, bytes) in [
        ("longer", [good.as_slice(), &[0u8; 4]].concat()),
        ("one-byte-longer", [good.as_slice(), &[0u8]].concat()),
        ("shorter", good[..good.len() - 4].to_vec()),
    ] {
        let q = dir.join(format!("{name}.npy"));
        std::fs::write(&q, &bytes).unwrap();
        let err = read_f32(&q).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ClipError::Npy { .. }), "{name}: {msg}");
        assert!(
            msg.contains(&format!(
                "the file holds {} bytes, its header declares {}",
                bytes.len(),
                good.len()
            )),
            "{name}: {msg}"
        );
    }
    // A header cut short, then nothing.
    let q = dir.join("cut.npy");
    std::fs::write(&q, &good[..20]).unwrap();
    assert!(matches!(read_f32(&q), Err(ClipError::Npy { .. })));
    // A directory, a FIFO, a device: refused at once, naming the path.
    let fifo = dir.join("fifo.npy");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    for special in [dir.clone(), fifo, Path::new("/dev/zero").to_path_buf()] {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = special.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_f32(&p).map(drop).map_err(|e| e.to_string()));
        });
        let res = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("reading {} blocked", special.display()));
        let msg = res.unwrap_err();
        assert!(
            msg.contains(&*special.to_string_lossy()),
            "{}: {msg}",
            special.display()
        );
    }
}

fn npy(header: &str, body: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(body);
    b
}

#[test]
fn headers_are_parsed_not_searched() {
    let f8 = 1.5f64.to_le_bytes();
    // A spoofed descr: '<f8' data whose header mentions '<f4' elsewhere.
    let spoof =
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': \"'descr': '<f4'\"}\n";
    assert!(parse_f32(&npy(spoof, &[f8, f8].concat())).is_err());
    let f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
    assert!(
        parse_f32(&npy(f8, &1.5f64.to_le_bytes()))
            .unwrap_err()
            .contains("<f8")
    );
    // fortran_order without a space is still Fortran order.
    let fortran = "{'descr':'<f4','fortran_order':True,'shape':(2,2)}\n";
    assert!(parse_f32(&npy(fortran, &[0u8; 16])).is_err());
    let c_order = "{'descr':'<f4','fortran_order':False,'shape':(2,2)}\n";
    assert_eq!(
        parse_f32(&npy(c_order, &[0u8; 16])).map(|r| r.0),
        Ok(vec![2, 2])
    );
    // Sizes: a huge empty shape, overflowing products, a body of the wrong length.
    let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 0), }\n";
    assert!(parse_f32(&npy(huge, &[])).is_err());
    let overflow =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }\n";
    assert!(
        parse_f32(&npy(overflow, &[]))
            .unwrap_err()
            .contains("overflows")
    );
    assert!(parse_f32(&npy(c_order, &[0u8; 12])).is_err());
    // Version 2.0 with a length past the end, an unknown version.
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(parse_f32(&v2).is_err());
    assert!(parse_f32(b"\x93NUMPY\x04\x00\x00\x00").is_err());
}

/// `read_f32_with` over pieces: a file past one 4 MiB piece (the header prefix leaves a partial
/// float to carry), the values equal the bytes' parse, the digest is the whole file's, and a
/// file cut short is refused.
#[test]
fn streamed_read_equals_parse_and_digests_the_whole_file() -> Result<(), ClipError> {
    let tmp = taiyi_testkit::scratch_dir("npy-stream-");
    let dir = tmp.path().to_path_buf();
    let p = dir.join("big.npy");
    let n = PIECE / 4 + 12_345;
    let data: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
    write_f32(&p, &[n / 5, 5], &data[..n / 5 * 5])?;
    let bytes = std::fs::read(&p).map_err(|source| ClipError::Io {
        path: p.clone(),
        source,
    })?;
    let mut digest = crate::commit::Sha256Hex::default();
    let streamed = read_f32_with(&p, |b| digest.update(b))?;
    assert_eq!(digest.finish(), crate::commit::sha256_hex(&bytes));
    assert_eq!(
        streamed,
        parse_f32(&bytes).map_err(|message| ClipError::Npy {
            path: p.clone(),
            message,
        })?
    );
    assert_eq!(streamed.1.as_slice(), &data[..n / 5 * 5]);
    std::fs::write(&p, &bytes[..bytes.len() - 3]).map_err(|source| ClipError::Io {
        path: p.clone(),
        source,
    })?;
    assert!(matches!(read_f32(&p), Err(ClipError::Npy { .. })));
    Ok(())
}
