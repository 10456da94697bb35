// RwLock: a reader-writer lock that prefers the writer. std::shared_mutex on glibc is a
// pthread_rwlock with the default reader preference, under which a steady stream of readers
// (Resolve on every request) can starve the tenant's writer indefinitely; this one makes new
// readers wait while a writer is waiting, so a write waits only for the reads already running.
// Meets the SharedMutex requirements (std::unique_lock / std::shared_lock / std::lock work).
//
// Thread-safety: it is the synchronisation primitive. Not recursive: a thread holding it shared
// must not lock it again (a waiting writer would deadlock it).
// Ownership: owns the pthread lock; not copyable or movable.
#pragma once

#include <pthread.h>

#include <cstdlib>

namespace siyu::identity {

class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&lock_, &attr) != 0) std::abort();
    pthread_rwlockattr_destroy(&attr);
  }
  ~RwLock() { pthread_rwlock_destroy(&lock_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void lock() { pthread_rwlock_wrlock(&lock_); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { pthread_rwlock_rdlock(&lock_); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};

}  // namespace siyu::identity
