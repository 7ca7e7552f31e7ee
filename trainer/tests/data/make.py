"""Writes the odd training photos of trainer/tests/train.rs (`odd_photos_*`): a CMYK JPEG and a
JPEG with an EXIF orientation tag. Needs Pillow (`pip install pillow`); the files are checked
in, so the tests do not. Run from this folder: python make.py"""
from PIL import Image

W, H = 72, 48
img = Image.new("RGB", (W, H), (30, 60, 90))
for y in range(12, 36):
    for x in range(20, 52):
        img.putpixel((x, y), (230, 200, 40))
img.convert("CMYK").save("cmyk.jpg", quality=95)
exif = Image.Exif()
exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
img.save("exif-rotated.jpg", quality=95, exif=exif.tobytes())
