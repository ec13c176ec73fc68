// The production Applier: a PgApplier and its database connection, opened by bind() and dropped
// by close() or a lost connection. Never null to its user: while closed, every call returns
// kUnavailable (the receiver's pump holds one of these, not a pointer that may be reset).
//
// Thread safety: none; one per thread.
#pragma once

#include <memory>
#include <string>

#include <mpf/replicator/applier.hpp>

namespace mpf::replicator {

class PgApplier;

class PgApplierConnection final : public Applier {
 public:
  explicit PgApplierConnection(std::string conninfo);
  ~PgApplierConnection() override;

  Status bind(const std::string& origin, const std::vector<TableDef>& tables) override;
  Result<Position> applied_position() override;
  Result<Position> apply(const std::vector<TxChunk>& chunks) override;
  Position failed_position() const override;
  void rollback() override;
  void close() override;

  bool is_open() const { return applier_ != nullptr; }

 private:
  std::string conninfo_;
  std::unique_ptr<PgApplier> applier_;
};

}  // namespace mpf::replicator
