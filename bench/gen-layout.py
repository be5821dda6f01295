#!/usr/bin/env python3
"""Writes an OCI image layout of generated images for benchmarks.

Each image gets its own layers of random bytes (incompressible, so no tool can shortcut them), except
--shared base layers that every image has in common. Tags are img0, img1, ...

    gen-layout.py DIR --images 10 --layers 8 --layer-size 4M [--shared 3] [--seed 1]
"""
import argparse
import hashlib
import json
import os
import random


def size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def write_blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def random_bytes(rng, n):
    # randbytes is limited to 2^31 bits per call; build large blobs from 64 MiB pieces.
    piece = 64 << 20
    return b"".join(rng.randbytes(min(piece, n - i)) for i in range(0, n, piece))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--layer-size", type=size, default=size("4M"))
    parser.add_argument("--shared", type=int, default=0, help="base layers common to every image")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    root = args.dir
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    shared = [write_blob(root, random_bytes(rng, args.layer_size)) for _ in range(args.shared)]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    for i in range(args.images):
        own = [write_blob(root, random_bytes(rng, args.layer_size)) for _ in range(args.layers - len(shared))]
        layers = [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **d) for d in shared + own]
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"bench.image": str(i)}},
            "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
        }).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **write_blob(root, config)),
            "layers": layers,
        }).encode()
        entry = dict(mediaType="application/vnd.oci.image.manifest.v1+json", **write_blob(root, manifest))
        entry["annotations"] = {"org.opencontainers.image.ref.name": f"img{i}"}
        index["manifests"].append(entry)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main()
