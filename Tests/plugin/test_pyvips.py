"""pyvips (from PyPI) calling the flash2ambient operation.

usage: test_pyvips.py VIPSHOME WORKDIR   (WORKDIR holds run.sh's test inputs)
Prints one line per check (Tests/lib/checks.py) and "pyvips: N passed, M failed"; run.sh counts them.
"""
import os
import subprocess
import sys
import threading

os.environ["VIPSHOME"] = sys.argv[1]  # before the import: libvips reads it in vips_init()
import pyvips  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from checks import attempt, finish  # noqa: E402

# No operation cache: cached loads would hand the same VipsImage (and its signal
# handlers, whose Python callbacks are gone) from one check to the next.
pyvips.cache_set_max(0)
work = sys.argv[2]
os.chdir(work)


def same_pixels(a, b):
    return (a - b).abs().max() == 0


def rgba():
    im = pyvips.Image.new_from_file("in-rgba.png")
    out = im.flash2ambient(strength=0.8)
    assert (out.width, out.height, out.bands, out.format, out.interpretation) == \
        (im.width, im.height, im.bands, im.format, im.interpretation), out
    assert same_pixels(out[3], im[3]), "alpha changed"
    assert not same_pixels(out[0:3], im[0:3]), "colour unchanged"
    return f"{out.width}x{out.height} {out.bands} bands {out.format}"


def modes():
    im = pyvips.Image.new_from_file("in-srgb.png")
    full = im.flash2ambient(mode="full")
    guided = im.flash2ambient(mode="guided", working_size=48)
    assert guided.width == im.width and guided.height == im.height
    assert not same_pixels(full, guided), "guided at 48 px should differ from full"
    return "mode=\"guided\", working_size=48"


def sixteen_bit():
    im = pyvips.Image.new_from_file("in-rgba16.png")
    out = im.flash2ambient()
    assert out.format == "ushort" and out.interpretation == "rgb16" and out.bands == 4, out
    assert same_pixels(out[3], im[3])
    return "ushort in, ushort out"


def metadata():
    im = pyvips.Image.new_from_file("in-srgb-icc.jpg").copy()
    im.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Flash Tester")
    im.set_type(pyvips.GValue.gint_type, "orientation", 6)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF ' \
          b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    im.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)
    im.write_to_file("meta.jpg")
    src = pyvips.Image.new_from_file("meta.jpg")
    # through pyvips, and through the vips CLI on the same file
    src.flash2ambient().write_to_file("meta-py.jpg")
    subprocess.run(["vips", "flash2ambient", "meta.jpg", "meta-cli.jpg"], check=True,
                   env=dict(os.environ))
    for name in ("meta-py.jpg", "meta-cli.jpg"):
        out = pyvips.Image.new_from_file(name)
        assert out.get("exif-ifd0-Artist").startswith("Flash Tester"), name
        assert out.get("orientation") == 6, name
        assert out.get("icc-profile-data") == src.get("icc-profile-data"), name
        assert b"xmpmeta" in out.get("xmp-data"), name
    return "EXIF Artist/Orientation, XMP, ICC survive pyvips and CLI"


def progress():
    im = pyvips.Image.new_from_file("in-srgb.png")
    im.set_progress(True)
    seen = []
    im.signal_connect("eval", lambda image, p: seen.append(p.percent))
    ends = []
    im.signal_connect("posteval", lambda image, p: ends.append(p.percent))
    im.flash2ambient(strength=0.7)
    assert seen and max(seen) == 100 and ends, (seen, ends)
    return f"{len(seen)} eval signals"


def cancel():
    im = pyvips.Image.new_from_file("in-srgb.png")
    im.set_progress(True)

    def on_eval(image, p):
        if p.percent >= 30:
            image.set_kill(True)
    im.signal_connect("eval", on_eval)
    try:
        im.flash2ambient(strength=0.6)
    except pyvips.Error as e:
        assert "cancel" in str(e) or "killed" in str(e), e
        return "set_kill() cancels the model run"
    raise AssertionError("not cancelled")


def input_paths():
    """Guided mode reads its input twice without holding it: pass 1 reads the input's file
    again (a sequential load), or the input itself when it is not sequential; a sequential
    input from elsewhere, or a file that does not read back as the input (a page of a
    multi-page file, a loader option), is copied to memory first. Every way gives the pixels
    of the input held in memory."""
    ref = pyvips.Image.new_from_file("big.jpg").copy_memory().flash2ambient()
    with open("big.jpg", "rb") as f:
        data = f.read()
    ways = {
        "file, sequential": pyvips.Image.new_from_file("big.jpg", access="sequential"),
        "file, random": pyvips.Image.new_from_file("big.jpg"),
        "pipeline, random": pyvips.Image.new_from_file("big.jpg").copy(interpretation="srgb"),
        "pipeline, sequential": pyvips.Image.new_from_file("big.jpg", access="sequential").copy(),
        "buffer, sequential": pyvips.Image.new_from_buffer(data, "", access="sequential"),
    }
    for name, im in ways.items():
        assert same_pixels(im.flash2ambient(), ref), name
    # page 1 of 2: the file read again would give page 0
    a = pyvips.Image.new_from_file("big.jpg")
    b = a.flip("horizontal")
    two = a.join(b, "vertical").copy()
    two.set_type(pyvips.GValue.gint_type, "page-height", a.height)
    two.write_to_file("two-pages.tif")
    page1 = pyvips.Image.new_from_file("two-pages.tif", page=1, access="sequential")
    assert same_pixels(page1.flash2ambient(), b.copy_memory().flash2ambient()), "page 1"
    # autorotate: the same size (a square), other pixels than the file read plainly
    side = min(a.width, a.height)
    sq = a.crop(0, 0, side, side).copy()
    sq.set_type(pyvips.GValue.gint_type, "orientation", 6)
    sq.write_to_file("square-o6.jpg")
    rot = pyvips.Image.new_from_file("square-o6.jpg", autorotate=True, access="sequential")
    want = pyvips.Image.new_from_file("square-o6.jpg", autorotate=True).copy_memory()
    assert same_pixels(rot.flash2ambient(), want.flash2ambient()), "autorotate"
    return f"{len(ways)} ways, a page of two, autorotate: the same pixels"


def bad_model():
    im = pyvips.Image.new_from_file("in-srgb.png")
    try:
        im.flash2ambient(model="/nonexistent/model.f2aw")
    except pyvips.Error as e:
        assert "cannot load model" in str(e), e
        return str(e).splitlines()[0][:80]
    raise AssertionError("no error")


def threads():
    im = pyvips.Image.new_from_file("in-3x5.png")
    results, errors = {}, []

    def run(s):
        try:
            results[s] = im.flash2ambient(strength=s).avg()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=run, args=(s,)) for s in (0.25, 0.5, 0.75, 1.0)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(results) == 4, (errors, results)
    return "4 concurrent calls"


for name, fn in (("image.flash2ambient(strength=0.8) on RGBA", rgba), ("16-bit RGBA", sixteen_bit),
                 ("modes", modes), ("input read twice or copied", input_paths), ("metadata", metadata), ("progress signals", progress), ("kill cancels", cancel),
                 ("bad model raises pyvips.Error", bad_model), ("threads", threads)):
    attempt(f"pyvips: {name}", fn)
sys.exit(finish("pyvips"))
