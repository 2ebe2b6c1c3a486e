// Package docs holds cxlregiond's design (design.md) and the kernel facts
// the code relies on (kernel.md). It has no code: its test walks the
// repository and fails on a reference that does not resolve inside it (a
// repository path, a Markdown anchor, a guarantee number, a capture id, a
// file name) or on a citation of a document that is not part of the
// repository.
package docs
