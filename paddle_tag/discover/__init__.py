"""Tag discovery: from unlabeled Chinese content to a named tag taxonomy (issue 7).

embed (:mod:`.embed`) → reduce (:mod:`.reduce`) → cluster (:mod:`.cluster`) → name (:mod:`.name`), run by
:class:`~paddle_tag.discover.pipeline.DiscoveryPipeline` into a :class:`~paddle_tag.discover.taxonomy.Taxonomy`,
which the tag database (:mod:`.store`) keeps and assignment (:mod:`.assign`) reads. Submodules are imported
where used, so ``import paddle_tag.discover`` stays cheap (no Paddle, faiss or sklearn).
"""
