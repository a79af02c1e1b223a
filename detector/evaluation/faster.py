"""faster-coco-eval's C++ matcher and accumulator, fed directly (the `faster` backend).

Every IoU is computed in one vectorised numpy pass (`_box_ious`, bit for bit faster-coco-eval's
own `computeIoU`); this relies on faster-coco-eval 1.8's C++ entry point
(`COCOevalEvaluateAccumulate`), which tests check against its stock pipeline.
"""

from __future__ import annotations

import numpy as np


def _groups(keys: np.ndarray, order: np.ndarray):
    """(unique keys, first position in `order`, count) of keys sorted by `order`."""
    unique, first, counts = np.unique(keys[order], return_index=True, return_counts=True)
    return unique, first, counts


def _box_ious(gts: list[dict], dts: list[dict], image_index: dict, category_index: dict,
              max_dets: int) -> dict[int, np.ndarray]:
    """{image position * K + category position: [D, G] IoU} for every pair with both ground
    truth and detections, in one vectorised pass, as faster-coco-eval's computeIoU builds them:
    detections by descending score (stable: file order among ties), at most max_dets; ground
    truth in file order; IoU = intersection / union, or / detection area for a crowd box; the
    same float64 operations in the same order as its C++ bbox IoU, so the values are bit for bit
    the same; Fortran order, as that C++ returns them."""
    if not gts or not dts:
        return {}
    categories = len(category_index)
    g_key = np.fromiter((image_index[a["image_id"]] * categories + category_index[a["category_id"]]
                         for a in gts), np.int64, len(gts))
    d_key = np.fromiter((image_index[a["image_id"]] * categories + category_index[a["category_id"]]
                         for a in dts), np.int64, len(dts))
    g_box = np.array([a["bbox"] for a in gts], dtype=np.float64)
    d_box = np.array([a["bbox"] for a in dts], dtype=np.float64)
    crowd = np.fromiter((a["iscrowd"] for a in gts), bool, len(gts))
    d_score = np.fromiter((a["score"] for a in dts), np.float64, len(dts))
    g_order = np.argsort(g_key, kind="stable")
    d_order = np.lexsort((-d_score, d_key))  # stable: key, then score descending
    g_unique, g_first, g_count = _groups(g_key, g_order)
    d_unique, d_first, d_count = _groups(d_key, d_order)
    pairs, g_at, d_at = np.intersect1d(g_unique, d_unique, assume_unique=True,
                                       return_indices=True)
    rows, columns = np.minimum(d_count[d_at], max_dets), g_count[g_at]
    sizes = rows * columns
    ends = np.cumsum(sizes)
    # element e of pair p sits at column e // rows, row e % rows (Fortran order)
    pair = np.repeat(np.arange(len(pairs)), sizes)
    offset = np.arange(ends[-1]) - (ends - sizes)[pair]
    gi = g_order[g_first[g_at][pair] + offset // rows[pair]]
    di = d_order[d_first[d_at][pair] + offset % rows[pair]]
    g, d = g_box[gi], d_box[di]
    width = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    height = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = width * height
    d_area = d[:, 2] * d[:, 3]
    union = np.where(crowd[gi], d_area, d_area + g[:, 2] * g[:, 3] - inter)
    iou = np.zeros(len(inter))
    np.divide(inter, union, out=iou, where=(width > 0) & (height > 0))
    return {int(key): iou[end - size:end].reshape((r, c), order="F")
            for key, end, size, r, c in zip(pairs.tolist(), ends.tolist(), sizes.tolist(),
                                            rows.tolist(), columns.tolist())}


def faster_eval(truth, results: list[dict]):
    """faster-coco-eval's C++ matcher and accumulator, fed straight from the annotation lists.

    COCOeval_faster.evaluate() first indexes both sides as COCO objects, selects every
    annotation again per image (getAnnIds/loadAnns), builds a dict over all image x category
    pairs (400k for 5000 images and 80 classes) and computes IoUs pair by pair in Python. With
    every image and category evaluated that selection is the identity, so here the annotations
    go to its C++ datasets in file order (ground truth of other images or categories than
    `truth` evaluates left out, as pycocotools' params.imgIds / catIds leave it out) (the order within each image and category, which ties
    depend on, is the same) and the IoUs come from `_box_ious` in one pass.
    """
    import copy

    import faster_coco_eval.faster_eval_api_cpp as engine
    from faster_coco_eval import COCOeval_faster

    dataset = truth.load()
    evaluator = COCOeval_faster(None, None, "bbox")
    params = evaluator.params
    params.imgIds = truth.image_ids if truth.image_ids is not None else sorted(
        {image["id"] for image in dataset["images"]})
    params.catIds = truth.category_ids if truth.category_ids is not None else sorted(
        {category["id"] for category in dataset["categories"]})
    params.maxDets = sorted(params.maxDets)
    gts = dataset["annotations"]
    if truth.image_ids is not None or truth.category_ids is not None:
        images, categories = set(params.imgIds), set(params.catIds)
        gts = [a for a in gts if a["image_id"] in images and a["category_id"] in categories]
    for gt in gts:
        gt["ignore"] = gt["iscrowd"]
        evaluator.gt_dataset.append_ref(gt["image_id"], gt["category_id"], gt)
    for dt in results:
        evaluator.dt_dataset.append_ref(dt["image_id"], dt["category_id"], dt)
    image_index = {image_id: i for i, image_id in enumerate(params.imgIds)}
    category_index = {category_id: k for k, category_id in enumerate(params.catIds)}
    no_pairs: list = []  # shared, read-only: "nothing to match" for the C++ side
    ious = [[no_pairs] * len(params.catIds) for _ in params.imgIds]
    for key, values in _box_ious(gts, results, image_index, category_index,
                                 params.maxDets[-1]).items():
        image, category = divmod(key, len(params.catIds))
        ious[image][category] = values
    evaluator._paramsEval = copy.deepcopy(params)
    evaluator.eval = engine.COCOevalEvaluateAccumulate(
        evaluator._paramsEval, ious, evaluator.gt_dataset, evaluator.dt_dataset,
        params.imgIds, params.catIds, True)
    evaluator.matched = False
    return evaluator
