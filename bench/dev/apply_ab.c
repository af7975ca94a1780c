// apply_ab: times f2a_apply_f32 (F2A_MODE_FULL) of one library build the way bench.py's
// "ours" worker calls it, and reports load-robust counts besides the wall time.
//   cc -O2 -o apply_ab bench/dev/apply_ab.c -Ibuild/include -ldl
//   ./apply_ab LIB.so WEIGHTS.f2aw WIDTH HEIGHT PASSES SETTLE_MS      (OUT=file: write the output)
// Prints medians per pass: wall, process CPU, cores (CPU / wall), worker_share (the pool
// workers' share of the process's run time, from /proc/self/task/*/schedstat) and rqwait
// (time the threads were runnable but waiting for a CPU: > 0 means the machine is busy).
// A/B: alternate two builds (copies of build/lib/libflash2ambient.so) in one sitting, e.g.
//   for r in 1 2 3; do for v in old new; do ./apply_ab $v/libflash2ambient.so weights/default.f2aw 512 512 11 100; done; done
// and F2A_POOL_HOLD_US=0 for the pool without f2a_pool_hold's polling.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "flash2ambient.h"
static double now(clockid_t c){struct timespec t;clock_gettime(c,&t);return t.tv_sec+t.tv_nsec*1e-9;}
/* main-thread runtime, other threads' runtime, total runqueue wait (s) */
static void sched(double *mainrun,double *otherrun,double *wait){
  *mainrun=*otherrun=*wait=0; DIR*d=opendir("/proc/self/task"); struct dirent*e; pid_t me=getpid();
  while((e=readdir(d))){ if(e->d_name[0]=='.')continue; char p[300]; snprintf(p,sizeof p,"/proc/self/task/%s/schedstat",e->d_name);
    FILE*f=fopen(p,"r"); if(!f)continue; unsigned long long r,w; if(fscanf(f,"%llu %llu",&r,&w)==2){ if(atoi(e->d_name)==me)*mainrun+=r*1e-9; else *otherrun+=r*1e-9; *wait+=w*1e-9;} fclose(f);} closedir(d);}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  if(argc<7){fprintf(stderr,"usage: apply_ab LIB WEIGHTS WIDTH HEIGHT PASSES SETTLE_MS\n");return 2;}
  void*h=dlopen(argv[1],RTLD_NOW|RTLD_LOCAL); if(!h){fprintf(stderr,"%s\n",dlerror());return 1;}
  f2a_status(*load)(const char*,f2a_model**)=dlsym(h,"f2a_model_load");
  f2a_params(*defp)(void)=dlsym(h,"f2a_default_params");
  f2a_status(*apply)(const f2a_model*,const float*,size_t,float*,size_t,int32_t,int32_t,const f2a_params*)=dlsym(h,"f2a_apply_f32");
  int W=atoi(argv[3]),H=atoi(argv[4]),N=atoi(argv[5]),settle=atoi(argv[6]);
  f2a_model*m; if(load(argv[2],&m)){fprintf(stderr,"load failed\n");return 1;}
  f2a_params p=defp(); p.mode=F2A_MODE_FULL;
  float*in=malloc((size_t)W*H*12),*out=malloc((size_t)W*H*12); srand(H*W);
  for(size_t i=0;i<(size_t)W*H*3;i++)in[i]=rand()/(float)RAND_MAX;
  apply(m,in,W*12,out,W*12,W,H,&p);
  double *wall=malloc(N*8),*cpu=malloc(N*8),*fw=malloc(N*8),*wt=malloc(N*8);
  for(int i=0;i<N;i++){ if(settle)usleep(settle*1000);
    double a,b,c,a2,b2,c2; sched(&a,&b,&c);
    double t0=now(CLOCK_MONOTONIC),c0=now(CLOCK_PROCESS_CPUTIME_ID);
    apply(m,in,W*12,out,W*12,W,H,&p);
    wall[i]=now(CLOCK_MONOTONIC)-t0; cpu[i]=now(CLOCK_PROCESS_CPUTIME_ID)-c0;
    sched(&a2,&b2,&c2); fw[i]=(b2-b)/((a2-a)+(b2-b)); wt[i]=c2-c; }
  if(getenv("OUT")){FILE*f=fopen(getenv("OUT"),"wb");fwrite(out,4,(size_t)W*H*3,f);fclose(f);}
  double cs=0; for(size_t i=0;i<(size_t)W*H*3;i++)cs+=out[i];
  qsort(wall,N,8,cmp);qsort(cpu,N,8,cmp);qsort(fw,N,8,cmp);qsort(wt,N,8,cmp);
  printf("%dx%d wall %.5f cpu %.5f cores %.2f worker_share %.3f rqwait %.5f checksum %.9g\n",W,H,wall[N/2],cpu[N/2],cpu[N/2]/wall[N/2],fw[N/2],wt[N/2],cs);
  return 0;}
