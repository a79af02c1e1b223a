"""`detector weights list` and `detector weights fetch`.

    detector weights list            the registry: name, arch, kind, where the file is found
    detector weights fetch NAME ...  resolve each name (DETECTOR_WEIGHTS folders, the cache, or a
                                     verified download) and print its path
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    weights = subparsers.add_parser("weights", help="list or download pretrained weights")
    sub = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="registered weights and where their files are")
    listing.set_defaults(func=run_list)
    fetch = sub.add_parser("fetch", help="download (or find) weights by name and print the path")
    fetch.add_argument("names", nargs="+", metavar="NAME", help="registered weights names")
    fetch.set_defaults(func=run_fetch)


def run_list(args) -> int:
    from detector.tables import format_table
    from detector.weights import cache_dir, find_local, list_weights

    rows = []
    for entry in list_weights():
        local = find_local(entry)
        rows.append([entry.name, entry.arch, entry.kind,
                     str(local) if local else "not here" + ("" if entry.url else " (no url)")])
    print(format_table(["name", "arch", "kind", "file"], rows))
    print(f"cache: {cache_dir()} (DETECTOR_CACHE); also searched: DETECTOR_WEIGHTS folders")
    return 0


def run_fetch(args) -> int:
    from detector.weights import resolve

    for name in args.names:
        print(resolve(name))
    return 0
