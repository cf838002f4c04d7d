"""CelebA in-the-wild photos (official train split, 241 identities) cropped like the paper's
CelebA crop: the `celeba_wild` set of <data_dir>/extra_faces_aux (see `extra_faces`).

Labels: the official CelebA identity id (from <data_dir>/celeba/identity_CelebA.txt), so a
pooled auxiliary set can be checked identity-disjoint from a CelebA target; photos of the
official test split are refused.
"""

from __future__ import annotations

from tfminv.data.sources import extra_faces

NAME = "celeba_wild"
FOLDERS = (extra_faces.FOLDER,)
SPLITS = ("all",)
DEFAULT_SIZE = 64
EXPECTED = extra_faces.EXPECTED


def find(data_dir):
    return extra_faces.find(data_dir, NAME)


def load(found, size: int, *, limit=None, skip_corrupt=False, progress=False):
    return extra_faces.load(found, size, NAME, limit=limit, skip_corrupt=skip_corrupt,
                            progress=progress)
