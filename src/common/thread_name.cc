#include "common/thread_name.h"

#include <pthread.h>

#include <string>

namespace siyu {

void NameThisThread(std::string_view name) {
  std::string n(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), n.c_str());
}

}  // namespace siyu
