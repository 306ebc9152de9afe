/*
 * be-cuda-load.h -- the few CUDA driver API and NVRTC declarations the
 * package uses, written here so that no CUDA header is needed at build
 * time.  Both libraries are dlopen'ed at first use (be-cuda-load.c); every
 * entry point is reached through the tables rk_cu and rk_nvrtc.
 * Private to be-cuda*.c.
 */
#ifndef RK_BE_CUDA_LOAD_H
#define RK_BE_CUDA_LOAD_H

#include <stddef.h>

/* ---- driver API (cuda.h, ABI of the _v2 entry points) ---- */
typedef int CUresult; /* 0 = CUDA_SUCCESS */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;

enum {
  RK_CU_ATTR_MAX_THREADS_PER_BLOCK = 1,
  RK_CU_ATTR_MULTIPROCESSOR_COUNT = 16,
  RK_CU_ATTR_CC_MAJOR = 75,
  RK_CU_ATTR_CC_MINOR = 76,
  RK_CU_ATTR_MAX_SHMEM_PER_BLOCK_OPTIN = 97,
  RK_CU_FUNC_ATTR_MAX_DYNAMIC_SHMEM = 8,
  RK_CU_FUNC_ATTR_NUM_REGS = 4,
  RK_CU_ERROR_OUT_OF_MEMORY = 2,
  RK_CU_JIT_INFO_LOG_BUFFER = 3,
  RK_CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
  RK_CU_JIT_ERROR_LOG_BUFFER = 5,
  RK_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
};

typedef struct rk_cu_api {
  CUresult (*Init)(unsigned int flags);
  CUresult (*DriverGetVersion)(int *v);
  CUresult (*DeviceGetCount)(int *n);
  CUresult (*DeviceGet)(CUdevice *d, int ordinal);
  CUresult (*DeviceGetName)(char *name, int len, CUdevice d);
  CUresult (*DeviceGetAttribute)(int *v, int attr, CUdevice d);
  CUresult (*DeviceTotalMem)(size_t *bytes, CUdevice d);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *c, CUdevice d);
  CUresult (*DevicePrimaryCtxRelease)(CUdevice d);
  CUresult (*CtxSetCurrent)(CUcontext c);
  CUresult (*CtxSynchronize)(void);
  CUresult (*ModuleLoadDataEx)(CUmodule *m, const void *image,
                               unsigned int nopt, int *opts, void **vals);
  CUresult (*ModuleUnload)(CUmodule m);
  CUresult (*ModuleGetFunction)(CUfunction *f, CUmodule m, const char *name);
  CUresult (*FuncSetAttribute)(CUfunction f, int attr, int value);
  CUresult (*FuncGetAttribute)(int *v, int attr, CUfunction f);
  CUresult (*LaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                           unsigned bx, unsigned by, unsigned bz,
                           unsigned shmem, CUstream s, void **params,
                           void **extra);
  CUresult (*MemAlloc)(CUdeviceptr *p, size_t bytes);
  CUresult (*MemFree)(CUdeviceptr p);
  CUresult (*MemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
  CUresult (*MemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
  CUresult (*MemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes,
                              CUstream s);
  CUresult (*MemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t bytes,
                              CUstream s);
  CUresult (*StreamCreate)(CUstream *s, unsigned flags);
  CUresult (*StreamDestroy)(CUstream s);
  CUresult (*StreamSynchronize)(CUstream s);
  CUresult (*MemGetInfo)(size_t *free_bytes, size_t *total_bytes);
  CUresult (*MemHostRegister)(void *p, size_t bytes, unsigned flags);
  CUresult (*MemHostUnregister)(void *p);
  CUresult (*GetErrorName)(CUresult r, const char **s);
  CUresult (*GetErrorString)(CUresult r, const char **s);
  /* optional (NULL when the driver lacks it) */
  CUresult (*OccupancyMaxActiveBlocksPerMultiprocessor)(int *nblocks,
                                                        CUfunction f,
                                                        int block_size,
                                                        size_t dyn_shmem);
  /* events (optional: without them, no pipelined calls, be-cuda.c) */
  CUresult (*EventCreate)(CUevent *ev, unsigned flags);
  CUresult (*EventRecord)(CUevent ev, CUstream s);
  CUresult (*EventSynchronize)(CUevent ev);
  CUresult (*EventDestroy)(CUevent ev);
  CUresult (*StreamWaitEvent)(CUstream s, CUevent ev, unsigned flags);
} rk_cu_api;

/* ---- NVRTC (nvrtc.h) ---- */
typedef int nvrtcResult; /* 0 = NVRTC_SUCCESS */
typedef struct _nvrtcProgram *nvrtcProgram;

typedef struct rk_nvrtc_api {
  nvrtcResult (*Version)(int *major, int *minor);
  const char *(*GetErrorString)(nvrtcResult r);
  nvrtcResult (*CreateProgram)(nvrtcProgram *p, const char *src,
                               const char *name, int nheaders,
                               const char *const *headers,
                               const char *const *include_names);
  nvrtcResult (*DestroyProgram)(nvrtcProgram *p);
  nvrtcResult (*CompileProgram)(nvrtcProgram p, int nopt,
                                const char *const *opts);
  nvrtcResult (*GetProgramLogSize)(nvrtcProgram p, size_t *size);
  nvrtcResult (*GetProgramLog)(nvrtcProgram p, char *log);
  nvrtcResult (*GetPTXSize)(nvrtcProgram p, size_t *size);
  nvrtcResult (*GetPTX)(nvrtcProgram p, char *ptx);
  /* optional (NULL when the library lacks them) */
  nvrtcResult (*GetCUBINSize)(nvrtcProgram p, size_t *size);
  nvrtcResult (*GetCUBIN)(nvrtcProgram p, char *cubin);
  nvrtcResult (*GetNumSupportedArchs)(int *n);
  nvrtcResult (*GetSupportedArchs)(int *archs);
} rk_nvrtc_api;

extern rk_cu_api rk_cu;
extern rk_nvrtc_api rk_nvrtc;

/* load libcuda (once; cuInit included).  1 on success; 0 with the reason
   in why. */
int rk_cu_load(char *why, size_t size);
/* load NVRTC (once).  1 on success; 0 with the reason in why. */
int rk_nvrtc_load(char *why, size_t size);
/* path or soname of the loaded NVRTC library ("" when none) */
const char *rk_nvrtc_libname(void);
/* "CUDA_ERROR_OUT_OF_MEMORY" style name of a driver result */
const char *rk_cu_errname(CUresult r);
/* NVRTC version as major*1000 + minor*10 (0 when absent) */
int rk_nvrtc_version(void);
/* NVRTC target text for a device, e.g. "nvrtc13.0/sm_90", or
   "nvrtc13.0/sm_90/fast-mid" for a quick kernel (be-cuda-nvrtc.c); 0 when
   NVRTC is absent */
int rk_nvrtc_target(int major, int minor, int quick, char *buf, size_t size);
/* highest compute capability NVRTC can make CUBIN for, e.g. 90 (0: unknown) */
int rk_nvrtc_max_arch(void);

#endif /* RK_BE_CUDA_LOAD_H */
