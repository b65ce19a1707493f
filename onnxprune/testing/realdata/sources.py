"""What the real-task sets are made of: fonts, photos and words that ship in installed wheels.

Nothing here downloads anything. Fonts are matplotlib's bundled TrueType fonts
(``mpl-data/fonts/ttf``), photos are scikit-learn's ``load_sample_images``, matplotlib's
``sample_data`` JPEGs and scikit-image's bundled ``skimage/data`` images, words come from a
vocabulary written out below plus generated numbers, dates, prices and codes.

Calibration and evaluation are disjoint by construction: each split has its own fonts
(:data:`FONTS`), its own half of the vocabulary (:func:`words`, split by a hash of the word)
and its own seeds; photos are split where the task allows it (faces).
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path

import numpy as np

SPLITS = ("calib", "eval")

# Regular text faces only: the symbol fonts (STIXSiz*, cmex10, ...) have no Latin glyphs.
FONTS: dict[str, tuple[str, ...]] = {
    "calib": (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSerif.ttf",
        "DejaVuSansMono.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralBol.ttf",
    ),
    "eval": (
        "DejaVuSans-Oblique.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSansMono-Bold.ttf",
        "STIXGeneralItalic.ttf",
        "DejaVuSans-BoldOblique.ttf",
    ),
}

_VOCAB = """
the of and to in is was for on are with as his they be at one have this from or had by hot
word but what some we can out other were all there when use your how said an each she which
do their time if will way about many then them write would like so these her long make thing
see him two has look more day could go come did number sound no most people my over know water
than call first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line differ turn cause much mean before
move right boy old too same tell does set three want air well also play small end put home
read hand port large spell add even land here must big high such follow act why ask men change
went light kind off need house picture try us again animal point mother world near build self
earth father head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree cross farm
hard start might story saw far sea draw left late run while press close night real life few
north open seem together next white children begin got walk example ease paper group always
music those both mark often letter until mile river car feet care second book carry took
science eat room friend began idea fish mountain stop once base hear horse cut sure watch color
face wood main enough plain girl usual young ready above ever red list though feel talk bird
soon body dog family direct pose leave song measure door product black short numeral class
wind question happen complete ship area half rock order fire south problem piece told knew
pass since top whole king space heard best hour better true during hundred five remember step
early hold west ground interest reach fast verb sing listen six table travel less morning ten
simple several vowel toward war lay against pattern slow center love person money serve
appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall
lead cry dark machine note wait plan figure star box noun field rest correct able pound done
beauty drive stood contain front teach week final gave green quick develop ocean warm free
minute strong special mind behind clear tail produce fact street inch multiply nothing course
stay wheel full force blue object decide surface deep moon island foot system busy test record
boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate
miss brought heat snow tire bring yes distant fill east paint language among grand ball yet
wave drop heart present heavy dance engine position arm wide sail material size vary settle
speak weight general ice matter circle pair include divide syllable felt perhaps pick sudden
count square reason length represent art subject region energy hunt probable bed brother egg
ride cell believe fraction forest sit race window store summer train sleep prove lone leg
exercise wall catch mount wish sky board joy winter sat written wild instrument kept glass
grass cow job edge sign visit past soft fun bright gas weather month million bear finish happy
hope flower clothe strange gone jump baby eight village meet root buy raise solve metal whether
push seven paragraph third shall held hair describe cook floor either result burn hill safe
cat century consider type law bit coast copy phrase silent tall sand soil roll temperature
finger industry value fight lie beat excite natural view sense ear else quite broke case middle
kill son lake moment scale loud spring observe child straight consonant nation dictionary milk
speed method organ pay age section dress cloud surprise quiet stone tiny climb cool design poor
lot experiment bottom key iron single stick flat twenty skin smile crease hole trade melody trip
office receive row mouth exact symbol die least trouble shout except wrote seed tone join
suggest clean break lady yard rise bad blow oil blood touch grew cent mix team wire cost lost
brown wear garden equal sent choose fell fit flow fair bank collect save control decimal gentle
woman captain practice separate difficult doctor please protect noon whose locate ring
character insect caught period indicate radio spoke atom human history effect electric expect
crop modern element hit student corner party supply bone rail imagine provide agree thus
capital chair danger fruit rich thick soldier process operate guess necessary sharp wing create
neighbor wash bat rather crowd corn compare poem string bell depend meat rub tube famous dollar
stream fear sight thin triangle planet hurry chief colony clock mine tie enter major fresh
search send yellow gun allow print dead spot desert suit current lift rose continue block chart
hat sell success company subtract event particular deal swim term opposite wife shoe shoulder
spread arrange camp invent cotton born determine quart nine truck noise level chance gather
shop stretch throw shine property column molecule select wrong gray repeat require broad
prepare salt nose plural anger claim continent oxygen sugar death pretty skill women season
solution magnet silver thank branch match suffix especially fig afraid huge sister steel
discuss forward similar guide experience score apple bought led pitch coat mass card band rope
slip win dream evening condition feed tool total basic smell valley nor double seat arrive
master track parent shore division sheet substance favor connect post spend chord fat glad
original share station dad bread charge proper bar offer segment slave duck instant market
degree populate chick dear enemy reply drink occur support speech nature range steam motion
path liquid log meant quotient teeth shell neck invoice receipt total amount account report
"""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _in_split(token: str, split: str) -> bool:
    return (zlib.crc32(token.encode()) % 2 == 0) == (split == "calib")


@functools.cache
def words(split: str) -> tuple[str, ...]:
    """Return the split's half of the vocabulary (the other split never sees these words)."""
    vocab = dict.fromkeys(_VOCAB.split())
    return tuple(w for w in vocab if _in_split(w, split))


def _styled(rng: np.random.Generator, word: str) -> str:
    r = rng.random()
    if r < 0.2:
        return word.capitalize()
    if r < 0.3:
        return word.upper()
    return word


def _number(rng: np.random.Generator) -> str:
    kind = int(rng.integers(0, 5))
    if kind == 0:
        return f"{int(rng.integers(0, 10000))}"
    if kind == 1:
        return f"${rng.uniform(0, 999):.2f}"
    if kind == 2:
        day, month, year = rng.integers(1, 29), rng.integers(0, 12), rng.integers(1990, 2030)
        return f"{day} {_MONTHS[int(month)]} {year}"
    if kind == 3:
        a, b, c = rng.integers(10, 99), rng.integers(100, 999), rng.integers(1000, 9999)
        return f"{a}-{b}-{c}"
    return f"{rng.uniform(0, 100):.1f}%"


def phrase(rng: np.random.Generator, split: str, n_words: int) -> str:
    """``n_words`` tokens of the split's vocabulary, with some numbers and punctuation."""
    vocab = words(split)
    tokens = []
    for _ in range(n_words):
        if rng.random() < 0.12:
            tokens.append(_number(rng))
        else:
            tokens.append(_styled(rng, vocab[int(rng.integers(0, len(vocab)))]))
    text = " ".join(tokens)
    if rng.random() < 0.3:
        text += str(rng.choice([".", ",", ":", ";", "!", "?"]))
    return text


@functools.cache
def font_path(name: str) -> Path:
    """Path of one of matplotlib's bundled fonts."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not path.exists():
        raise FileNotFoundError(f"matplotlib font {path} is missing: reinstall matplotlib")
    return path


@functools.cache
def font(name: str, size: int):  # type: ignore[no-untyped-def]
    """Return a PIL font object for one of matplotlib's bundled fonts (cached)."""
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(name)), size)


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# Photos without faces or text, for backgrounds and non-face crops; faces are in FACE_PHOTOS.
_SKIMAGE_PHOTOS = (
    "coffee.png", "chelsea.png", "rocket.jpg", "hubble_deep_field.jpg", "motorcycle_left.png",
    "brick.png", "grass.png", "gravel.png", "coins.png", "moon.png", "retina.jpg", "ihc.png",
)  # fmt: skip
FACE_PHOTOS = ("astronaut.png", "camera.png", "grace_hopper.jpg")


def _skimage_dir() -> Path:
    try:
        import skimage
    except ImportError as e:
        raise ImportError(
            "the real-task sets need scikit-image's bundled photos: pip install scikit-image"
        ) from e
    return Path(skimage.__file__).parent / "data"


@functools.cache
def photos() -> tuple[tuple[str, np.ndarray], ...]:
    """Bundled photos without faces or text (sklearn, matplotlib, scikit-image), RGB uint8."""
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    out = [(Path(f).name, np.asarray(i)) for f, i in zip(data.filenames, data.images, strict=True)]
    out += [(n, _read_rgb(_skimage_dir() / n)) for n in _SKIMAGE_PHOTOS]
    return tuple(out)


@functools.cache
def face_photo(name: str) -> np.ndarray:
    """One of :data:`FACE_PHOTOS` as RGB uint8 (matplotlib's grace_hopper, skimage's others)."""
    import matplotlib

    if name == "grace_hopper.jpg":
        return _read_rgb(Path(matplotlib.get_data_path()) / "sample_data" / name)
    return _read_rgb(_skimage_dir() / name)


@functools.cache
def lfw_subset() -> np.ndarray:
    """scikit-image's bundled LFW subset: 100 faces then 100 non-faces, 25x25 grey in [0, 1]."""
    return np.load(_skimage_dir() / "lfw_subset.npy")


def random_crop(rng: np.random.Generator, img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Cut a random crop with aspect w/h (35-100% of the largest fit), resized to (w, h)."""
    ih, iw = img.shape[:2]
    ch = min(ih, iw * h / w) * rng.uniform(0.35, 1.0)
    cw = min(iw, ch * w / h)
    ch_i, cw_i = max(2, round(ch)), max(2, round(cw))
    y0 = int(rng.integers(0, ih - ch_i + 1))
    x0 = int(rng.integers(0, iw - cw_i + 1))
    crop = img[y0 : y0 + ch_i, x0 : x0 + cw_i]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return resize(np.ascontiguousarray(crop), w, h)


def resize(img: np.ndarray, w: int, h: int, resample: str = "bilinear") -> np.ndarray:
    """Resize an HWC uint8 image with PIL (bilinear like cv2.resize's default, or box/area)."""
    from PIL import Image

    filt = {"bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}[resample]
    return np.asarray(Image.fromarray(img).resize((w, h), filt))


def background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Paper (off-white, gradient, grain) or a faded photo, RGB uint8 (h, w, 3)."""
    if rng.random() < 0.55:
        base = rng.uniform(200, 255, size=3)
        tint = np.linspace(0, rng.uniform(-25, 10), h)[:, None, None]
        grain = rng.normal(0, rng.uniform(0, 6), size=(h, w, 1))
        img = base[None, None, :] + tint + grain
    else:
        pics = photos()
        photo = random_crop(rng, pics[int(rng.integers(0, len(pics)))][1], w, h)
        fade = rng.uniform(0.55, 0.85)
        img = photo.astype(np.float64) * (1 - fade) + 255.0 * fade
    return np.clip(img, 0, 255).astype(np.uint8)


def ink(rng: np.random.Generator) -> tuple[int, int, int]:
    """Pick a dark text colour (black, grey, dark blue/red/green)."""
    level = int(rng.integers(0, 70))
    tint = rng.integers(0, 50, size=3) * (rng.random() < 0.3)
    return tuple(int(level + t) for t in tint)  # type: ignore[return-value]
