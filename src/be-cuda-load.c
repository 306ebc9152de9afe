/*
 * be-cuda-load.c -- find and dlopen the CUDA driver (libcuda.so.1) and
 * NVRTC at the first GPU use, and fill the entry-point tables declared in
 * be-cuda-load.h.  Nothing here needs a CUDA header or library at build
 * time.  Loading happens once per process; a failure is remembered with its
 * reason (reported by rk_cuda_available and check_rkeops()).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be-cuda-load.h"

rk_cu_api rk_cu;
rk_nvrtc_api rk_nvrtc;

static int cu_state; /* 0 untried, 1 loaded, -1 failed */
static char cu_why[1024];
static int nvrtc_state;
static char nvrtc_why[1024];
static char nvrtc_name[800];
static int nvrtc_ver;
static int nvrtc_maxarch;

static void set_why(char *why, size_t size, const char *msg) {
  if (why && size)
    snprintf(why, size, "%s", msg);
}

/* dlsym into a function-pointer slot without a pedantic object/function
   pointer cast warning */
static int sym(void *h, const char *name, void *slot, int required, char *miss,
               size_t msize) {
  void *p = dlsym(h, name);
  memcpy(slot, &p, sizeof p);
  if (!p && required && miss[0] == 0)
    snprintf(miss, msize, "%s", name);
  return p != NULL;
}

int rk_cu_load(char *why, size_t size) {
  if (cu_state == 0) {
    /* the reason quoted is the one of libcuda.so.1 (the driver's name);
       libcuda.so (a development link) is only a second chance */
    char err1[600] = "not found";
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char *d = dlerror();
      if (d)
        snprintf(err1, sizeof err1, "%s", d);
      h = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
      snprintf(cu_why, sizeof cu_why,
               "no CUDA driver: libcuda.so.1 could not be loaded (%s)", err1);
      cu_state = -1;
    } else {
      char miss[128] = "";
      rk_cu_api *a = &rk_cu;
      sym(h, "cuInit", &a->Init, 1, miss, sizeof miss);
      sym(h, "cuDriverGetVersion", &a->DriverGetVersion, 1, miss, sizeof miss);
      sym(h, "cuDeviceGetCount", &a->DeviceGetCount, 1, miss, sizeof miss);
      sym(h, "cuDeviceGet", &a->DeviceGet, 1, miss, sizeof miss);
      sym(h, "cuDeviceGetName", &a->DeviceGetName, 1, miss, sizeof miss);
      sym(h, "cuDeviceGetAttribute", &a->DeviceGetAttribute, 1, miss,
          sizeof miss);
      sym(h, "cuDeviceTotalMem_v2", &a->DeviceTotalMem, 1, miss, sizeof miss);
      sym(h, "cuDevicePrimaryCtxRetain", &a->DevicePrimaryCtxRetain, 1, miss,
          sizeof miss);
      if (!sym(h, "cuDevicePrimaryCtxRelease_v2", &a->DevicePrimaryCtxRelease,
               0, miss, sizeof miss))
        sym(h, "cuDevicePrimaryCtxRelease", &a->DevicePrimaryCtxRelease, 1,
            miss, sizeof miss);
      sym(h, "cuCtxSetCurrent", &a->CtxSetCurrent, 1, miss, sizeof miss);
      sym(h, "cuCtxSynchronize", &a->CtxSynchronize, 1, miss, sizeof miss);
      sym(h, "cuModuleLoadDataEx", &a->ModuleLoadDataEx, 1, miss, sizeof miss);
      sym(h, "cuModuleUnload", &a->ModuleUnload, 1, miss, sizeof miss);
      sym(h, "cuModuleGetFunction", &a->ModuleGetFunction, 1, miss,
          sizeof miss);
      sym(h, "cuFuncSetAttribute", &a->FuncSetAttribute, 1, miss, sizeof miss);
      sym(h, "cuFuncGetAttribute", &a->FuncGetAttribute, 1, miss, sizeof miss);
      sym(h, "cuLaunchKernel", &a->LaunchKernel, 1, miss, sizeof miss);
      sym(h, "cuMemAlloc_v2", &a->MemAlloc, 1, miss, sizeof miss);
      sym(h, "cuMemFree_v2", &a->MemFree, 1, miss, sizeof miss);
      sym(h, "cuMemcpyHtoD_v2", &a->MemcpyHtoD, 1, miss, sizeof miss);
      sym(h, "cuMemcpyDtoH_v2", &a->MemcpyDtoH, 1, miss, sizeof miss);
      sym(h, "cuMemcpyHtoDAsync_v2", &a->MemcpyHtoDAsync, 1, miss, sizeof miss);
      sym(h, "cuMemcpyDtoHAsync_v2", &a->MemcpyDtoHAsync, 1, miss, sizeof miss);
      sym(h, "cuStreamCreate", &a->StreamCreate, 1, miss, sizeof miss);
      sym(h, "cuStreamDestroy_v2", &a->StreamDestroy, 1, miss, sizeof miss);
      sym(h, "cuStreamSynchronize", &a->StreamSynchronize, 1, miss,
          sizeof miss);
      sym(h, "cuMemGetInfo_v2", &a->MemGetInfo, 1, miss, sizeof miss);
      sym(h, "cuMemHostRegister_v2", &a->MemHostRegister, 0, miss, sizeof miss);
      sym(h, "cuMemHostUnregister", &a->MemHostUnregister, 0, miss,
          sizeof miss);
      sym(h, "cuGetErrorName", &a->GetErrorName, 1, miss, sizeof miss);
      sym(h, "cuGetErrorString", &a->GetErrorString, 1, miss, sizeof miss);
      sym(h, "cuOccupancyMaxActiveBlocksPerMultiprocessor",
          &a->OccupancyMaxActiveBlocksPerMultiprocessor, 0, miss, sizeof miss);
      sym(h, "cuEventCreate", &a->EventCreate, 0, miss, sizeof miss);
      sym(h, "cuEventRecord", &a->EventRecord, 0, miss, sizeof miss);
      sym(h, "cuEventSynchronize", &a->EventSynchronize, 0, miss, sizeof miss);
      sym(h, "cuEventDestroy_v2", &a->EventDestroy, 0, miss, sizeof miss);
      sym(h, "cuStreamWaitEvent", &a->StreamWaitEvent, 0, miss, sizeof miss);
      if (miss[0]) {
        snprintf(cu_why, sizeof cu_why,
                 "the CUDA driver is too old: libcuda.so.1 lacks %s", miss);
        dlclose(h);
        cu_state = -1;
      } else {
        CUresult r = rk_cu.Init(0);
        if (r != 0) {
          snprintf(cu_why, sizeof cu_why, "cuInit failed: %s",
                   rk_cu_errname(r));
          cu_state = -1;
        } else {
          cu_state = 1; /* the handle stays open for the process */
        }
      }
    }
  }
  if (cu_state < 0)
    set_why(why, size, cu_why);
  return cu_state > 0;
}

const char *rk_cu_errname(CUresult r) {
  const char *s = NULL;
  if (cu_state != 0 && rk_cu.GetErrorName && rk_cu.GetErrorName(r, &s) == 0 &&
      s)
    return s;
  return r == RK_CU_ERROR_OUT_OF_MEMORY ? "CUDA_ERROR_OUT_OF_MEMORY"
                                        : "CUDA_ERROR_UNKNOWN";
}

/* candidate NVRTC libraries, newest first: plain sonames (found through the
   loader's path), then CUDA_HOME, CUDA_PATH and /usr/local/cuda */
static const char *const nvrtc_sonames[] = {"libnvrtc.so",
                                            "libnvrtc.so.13",
                                            "libnvrtc.so.12",
                                            "libnvrtc.so.11.2",
                                            "libnvrtc.so.11.8",
                                            "libnvrtc.so.11.7",
                                            "libnvrtc.so.11.6",
                                            "libnvrtc.so.11.5",
                                            "libnvrtc.so.11.4",
                                            "libnvrtc.so.11.3",
                                            "libnvrtc.so.11.1",
                                            "libnvrtc.so.11.0",
                                            NULL};

static void *try_nvrtc(const char *dir, char *tried, size_t tsize) {
  for (int i = 0; nvrtc_sonames[i]; i++) {
    char path[768];
    if (dir)
      snprintf(path, sizeof path, "%s/%s", dir, nvrtc_sonames[i]);
    else
      snprintf(path, sizeof path, "%s", nvrtc_sonames[i]);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h) {
      snprintf(nvrtc_name, sizeof nvrtc_name, "%s", path);
      return h;
    }
  }
  size_t n = strlen(tried);
  if (n < tsize)
    snprintf(tried + n, tsize - n, "%s%s", n ? ", " : "",
             dir ? dir : "the library path");
  return NULL;
}

int rk_nvrtc_load(char *why, size_t size) {
  if (nvrtc_state == 0) {
    char tried[600] = "";
    void *h = try_nvrtc(NULL, tried, sizeof tried);
    const char *envs[] = {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT", NULL};
    for (int i = 0; !h && envs[i]; i++) {
      const char *d = getenv(envs[i]);
      if (d && *d) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/lib64", d);
        h = try_nvrtc(dir, tried, sizeof tried);
        if (!h) {
          snprintf(dir, sizeof dir, "%s/lib", d);
          h = try_nvrtc(dir, tried, sizeof tried);
        }
      }
    }
    if (!h)
      h = try_nvrtc("/usr/local/cuda/lib64", tried, sizeof tried);
    if (!h)
      h = try_nvrtc("/usr/local/cuda/lib", tried, sizeof tried);
    if (!h) {
      snprintf(nvrtc_why, sizeof nvrtc_why,
               "NVRTC (libnvrtc.so) not found in %s; install NVRTC (the CUDA "
               "toolkit, or only its runtime compiler: the distribution's "
               "cuda-nvrtc / libnvrtc package, or pip's nvidia-cuda-nvrtc) "
               "and set CUDA_HOME to the directory holding lib64/",
               tried);
      nvrtc_state = -1;
    } else {
      char miss[128] = "";
      rk_nvrtc_api *a = &rk_nvrtc;
      sym(h, "nvrtcVersion", &a->Version, 1, miss, sizeof miss);
      sym(h, "nvrtcGetErrorString", &a->GetErrorString, 1, miss, sizeof miss);
      sym(h, "nvrtcCreateProgram", &a->CreateProgram, 1, miss, sizeof miss);
      sym(h, "nvrtcDestroyProgram", &a->DestroyProgram, 1, miss, sizeof miss);
      sym(h, "nvrtcCompileProgram", &a->CompileProgram, 1, miss, sizeof miss);
      sym(h, "nvrtcGetProgramLogSize", &a->GetProgramLogSize, 1, miss,
          sizeof miss);
      sym(h, "nvrtcGetProgramLog", &a->GetProgramLog, 1, miss, sizeof miss);
      sym(h, "nvrtcGetPTXSize", &a->GetPTXSize, 1, miss, sizeof miss);
      sym(h, "nvrtcGetPTX", &a->GetPTX, 1, miss, sizeof miss);
      sym(h, "nvrtcGetCUBINSize", &a->GetCUBINSize, 0, miss, sizeof miss);
      sym(h, "nvrtcGetCUBIN", &a->GetCUBIN, 0, miss, sizeof miss);
      sym(h, "nvrtcGetNumSupportedArchs", &a->GetNumSupportedArchs, 0, miss,
          sizeof miss);
      sym(h, "nvrtcGetSupportedArchs", &a->GetSupportedArchs, 0, miss,
          sizeof miss);
      int maj = 0, min = 0;
      if (miss[0]) {
        snprintf(nvrtc_why, sizeof nvrtc_why, "%s lacks %s", nvrtc_name, miss);
        dlclose(h);
        nvrtc_state = -1;
      } else if (rk_nvrtc.Version(&maj, &min) != 0) {
        snprintf(nvrtc_why, sizeof nvrtc_why, "nvrtcVersion failed (%s)",
                 nvrtc_name);
        dlclose(h);
        nvrtc_state = -1;
      } else {
        nvrtc_ver = maj * 1000 + min * 10;
        int n = 0;
        if (rk_nvrtc.GetNumSupportedArchs && rk_nvrtc.GetSupportedArchs &&
            rk_nvrtc.GetNumSupportedArchs(&n) == 0 && n > 0 && n < 256) {
          int archs[256];
          if (rk_nvrtc.GetSupportedArchs(archs) == 0)
            for (int i = 0; i < n; i++)
              if (archs[i] > nvrtc_maxarch)
                nvrtc_maxarch = archs[i];
        }
        nvrtc_state = 1;
      }
    }
  }
  if (nvrtc_state < 0)
    set_why(why, size, nvrtc_why);
  return nvrtc_state > 0;
}

const char *rk_nvrtc_libname(void) {
  return nvrtc_name;
}
int rk_nvrtc_version(void) {
  return nvrtc_ver;
}
int rk_nvrtc_max_arch(void) {
  return nvrtc_maxarch;
}
