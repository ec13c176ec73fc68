#include <mpf/replicator/pg_applier.hpp>
#include <mpf/replicator/pg_applier_connection.hpp>

namespace mpf::replicator {
namespace {

Status closed() { return unavailable("the applier's database connection is closed"); }

}  // namespace

PgApplierConnection::PgApplierConnection(std::string conninfo) : conninfo_(std::move(conninfo)) {}

PgApplierConnection::~PgApplierConnection() = default;

Status PgApplierConnection::bind(const std::string& origin, const std::vector<TableDef>& tables) {
  if (!applier_) {
    auto opened = PgApplier::open(conninfo_);
    if (!opened) return opened.status();
    applier_ = std::move(opened.value());
  }
  Status s = applier_->bind(origin, tables);
  // A lost connection is not reused: the next bind reconnects.
  if (!s && s.code() == Code::kUnavailable) close();
  return s;
}

Result<Position> PgApplierConnection::applied_position() {
  if (!applier_) return closed();
  auto r = applier_->applied_position();
  if (!r) close();
  return r;
}

Result<Position> PgApplierConnection::apply(const std::vector<TxChunk>& chunks) {
  if (!applier_) return closed();
  auto r = applier_->apply(chunks);
  if (!r &&
      (r.status().code() == Code::kUnavailable || r.status().code() == Code::kUnknownOutcome)) {
    close();
  }
  return r;
}

Position PgApplierConnection::failed_position() const {
  return applier_ ? applier_->failed_position() : Position{};
}

void PgApplierConnection::rollback() {
  if (applier_) applier_->reset();
}

void PgApplierConnection::close() {
  if (applier_) applier_->reset();
  applier_.reset();
}

}  // namespace mpf::replicator
