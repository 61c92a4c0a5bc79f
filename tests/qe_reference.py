#!/usr/bin/python3
"""qe_reference.py — an independent numpy reader of the quality-estimator blob
(format documented at the top of src/qe/qe_io.c) that recomputes predictions
in float64 and compares them with the C library's.

usage: qe_reference.py DIR NAME...   (DIR/NAME.qe, NAME.x float32, NAME.p float64)
Prints one "ok"/"FAIL" line per estimator and ends with "N passed, N failed".
"""
import struct
import sys

import numpy as np


def parse(blob):
    assert blob[:8] == b"IPRQE\0\0\0", "magic"
    version, reserved = struct.unpack_from("<II", blob, 8)
    assert version == 1 and reserved == 0, "version"
    off = 16
    core, adapters, end = None, [], None
    while off < len(blob):
        tag, res, plen = struct.unpack_from("<4sIQ", blob, off)
        assert res == 0
        payload = blob[off + 16: off + 16 + plen]
        assert len(payload) == plen, "truncated"
        off += 16 + plen + 8  # payload hash not checked here (no xxhash module)
        if tag == b"CORE":
            d, hidden = struct.unpack_from("<QQ", payload, 0)
            p = 16 + 64  # sizes, then the 64-byte training config
            f = np.frombuffer(payload, dtype="<f4", offset=p).astype(np.float64)
            mean, scale = f[:d], f[d:2 * d]
            w1 = f[2 * d:2 * d + hidden * d].reshape(hidden, d)
            b1 = f[2 * d + hidden * d:2 * d + hidden * d + hidden]
            assert len(f) == 2 * d + hidden * d + hidden
            core = dict(d=d, hidden=hidden, mean=mean, scale=scale, w1=w1, b1=b1)
        elif tag == b"ADPT":
            fin, ah, calib, _r, nk = struct.unpack_from("<QQIIQ", payload, 0)
            ca, cb = struct.unpack_from("<dd", payload, 32)
            f = np.frombuffer(payload, dtype="<f4", offset=32 + 48).astype(np.float64)
            npar = ah * fin + 2 * ah + 1 if ah else fin + 1
            assert len(f) == npar + 2 * nk
            w = f[:npar]
            a = dict(fin=fin, ah=ah, calib=calib, ca=ca, cb=cb, kz=f[npar:npar + nk], kp=f[npar + nk:])
            if ah:
                a["W"] = w[:ah * fin].reshape(ah, fin)
                a["b"] = w[ah * fin:ah * fin + ah]
                a["w2"] = w[ah * fin + ah:ah * fin + 2 * ah]
                a["b2"] = w[-1]
            else:
                a["w"], a["b"] = w[:fin], w[fin]
            adapters.append(a)
        elif tag == b"END\0":
            (end,) = struct.unpack_from("<Q", payload, 0)
        else:
            raise AssertionError("unknown tag %r" % tag)
    assert core is not None and end == len(adapters), "END count"
    return core, adapters


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def predict(core, adapters, x):
    xs = (x.astype(np.float64) - core["mean"]) * core["scale"]
    f = np.maximum(xs @ core["w1"].T + core["b1"], 0) if core["hidden"] else xs
    out = []
    for a in adapters:
        if a["ah"]:
            h = np.maximum(f @ a["W"].T + a["b"], 0)
            z = h @ a["w2"] + a["b2"]
        else:
            z = f @ a["w"] + a["b"]
        if a["calib"] == 1:
            p = sigmoid(a["ca"] * z + a["cb"])
        elif a["calib"] == 2:
            p = np.interp(z, a["kz"], a["kp"])  # constant beyond the end knots, like the C code
        else:
            p = sigmoid(z)
        out.append(p)
    return np.stack(out, axis=1)


def main():
    d, names = sys.argv[1], sys.argv[2:]
    passed = failed = 0
    for name in names:
        try:
            blob = open(f"{d}/{name}.qe", "rb").read()
            core, adapters = parse(blob)
            m = len(adapters)
            x = np.fromfile(f"{d}/{name}.x", dtype="<f4").reshape(-1, core["d"])
            pc = np.fromfile(f"{d}/{name}.p", dtype="<f8").reshape(-1, m)
            pr = predict(core, adapters, x)
            err = float(np.max(np.abs(pr - pc)))
            kinds = sorted({a["calib"] for a in adapters})
            # float32 activations in C against float64 here: logits agree to
            # ~1e-6 relative, a probability to well under 1e-5
            if err < 1e-5:
                passed += 1
                print(f"ok   {name}: {m} models, calibration kinds {kinds}, max |diff| {err:.2e}")
            else:
                failed += 1
                print(f"FAIL {name}: max |diff| {err:.3e}")
        except Exception as e:  # a parse failure is a test failure
            failed += 1
            print(f"FAIL {name}: {e}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
