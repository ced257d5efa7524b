// A drift baseline from a .dlsys archive: its examples, as serve would have logged them.
//
// Each example tensor is split along its first dimension into rows, and each row counts as one
// request of batch size 1 (docs/logging.md, "Sampled inputs and predictions"): the first 8
// elements of an input row are values of the feature "input.<name>", those of a golden output
// row values of "prediction.<name>", and an output row of 2 to 8 elements also gives
// "prediction.<name>.argmax" (AddTensorFeatures). A tensor of rank 0 is one row.
#pragma once

#include <string>

#include "core/error.h"
#include "monitor/drift.h"
#include "package/package.h"

namespace dlsys::monitor {

// Reads the archive once through package::LoadVerified (the same checks as serve: container,
// manifest, signature by a key in options.trust unless options.allow_unsigned, every digest),
// then builds the baseline from the verified bytes of its examples.
// kUsage if options.trust is empty and !options.allow_unsigned; kNotFound if the file does not
// exist; kVerifyFailed (kInvalid when the container itself is broken) if a check fails, one
// detail line per failed check; kInvalid if the archive has no examples or an example tensor's
// bytes do not match its dtype and shape.
[[nodiscard]] Result<DriftBaseline> BaselineFromArchive(const std::string& path,
                                                        const package::VerifyOptions& options);

// Adds the examples of an archive that verified (archive.report.ok) to a sink.
// kInvalid, naming the example and tensor, if a tensor's file is missing from archive.files,
// its dtype is unknown or its bytes do not match dtype and shape.
[[nodiscard]] Result<void> AddArchiveExamples(const package::VerifiedArchive& archive,
                                              DriftSink& sink);

}  // namespace dlsys::monitor
