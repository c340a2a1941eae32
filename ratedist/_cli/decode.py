"""``ratedist decode IN.rdst -o OUT [--like CKPT]``: decode any weights stream, whatever coded it.

The stream's own header names its format: a SuRP stream (``ratedist surp encode``), a quantizer
stream (``ratedist quant encode``) or a coded pruned model (``ratedist prune -o FILE.rdst``). The
decoded weights are written like the format's own decode verb writes them.
"""

from __future__ import annotations

from ..errors import CorruptStreamError, InvalidArgumentError
from ._common import add_json_flag, read_input
from .surp import OUTPUT_HELP

__all__ = ["add_parser", "decode_weights"]


def add_parser(sub) -> None:
    p = sub.add_parser("decode", help="decode any weights stream (.rdst from surp, quant or prune) to weights",
                       description=__doc__.splitlines()[0])
    p.add_argument("input", metavar="IN.rdst")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=OUTPUT_HELP)
    p.add_argument("--like", default=None, metavar="CKPT",
                   help="the encoded checkpoint (file, *.index.json or directory): write in its dtypes, key order "
                        "and shard layout (default: as decoded)")
    add_json_flag(p)
    p.set_defaults(func=run)


def decode_weights(stream: bytes) -> tuple[str, dict]:
    """``(format, weights)`` of a weights stream, dispatched on the format its header names."""
    from ..coding.container import unpack_container

    fmt = unpack_container(stream, max_segments=0).header.get("format")
    if fmt == "surp":
        from .. import surp

        return "surp", surp.decode(stream)
    if isinstance(fmt, str) and fmt.startswith("ratedist.quant"):
        from .. import quant

        return fmt, quant.decode(stream)
    if fmt == "ratedist.pruning.cost":
        from ..pruning import decode_cost

        return fmt, decode_cost(stream).weights
    if isinstance(fmt, str) and fmt:
        raise InvalidArgumentError(f"`IN` holds a {fmt!r} stream, which does not decode to model weights; "
                                   "`ratedist decode` reads streams written by `surp encode`, `quant encode` and "
                                   "`prune -o FILE.rdst`.")
    raise CorruptStreamError("`IN` is a ratedist container without a format name: not a weights stream.")


def run(args):
    from .surp import decoded_output

    stream = read_input(args.input)
    decoded_output(args, None, args.input)  # refuse a bad -o/--like before decoding
    fmt, weights = decode_weights(stream)
    out, dtypes = decoded_output(args, weights, args.input)
    n = sum(int(w.size) for w in weights.values())
    nnz = sum(int((w != 0).sum()) for w in weights.values())
    payload = {"format": fmt, "output": str(out), "n_params": n, "nnz": nnz, "tensors": list(weights),
               "written_dtypes": dtypes}
    return payload, (f"{fmt}: wrote {out}: {len(weights)} tensors, {n} parameters ({nnz} non-zero), as "
                     + ", ".join(dtypes))
